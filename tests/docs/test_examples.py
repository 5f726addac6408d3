"""Every code example in README.md and docs/*.md runs, and does what the text says.

Each document's ``python``, ``sh``/``bash`` and ``console`` blocks run in order against a
database of their own, the Stripe stand-in and (when a block needs it) a real ``upsync server``
syncing the stand-in (``tests/docs/world.py``). Python blocks share one namespace per document,
so a block can use what an earlier one defined; top-level ``await`` works, on one event loop per
document. Shell blocks run under ``bash -euo pipefail`` with ``curl`` failing on HTTP errors;
``console`` blocks run their ``$`` lines and ignore the shown output.

A block that cannot run is marked ``<!-- example: skip (reason) -->`` in the Markdown, so
skipping is a decision written next to the example, never silent. The kinds skipped are: ``pip
install`` and other set-up of the machine; commands that run until stopped (``upsync server``,
``upsync tail``, ``uvicorn.run``, the stand-in's command); commands needing what the test
machine does not have (a live Stripe key, a host named in the example, ``alembic``); the test
suite and benchmarks themselves; and walkthroughs with placeholders (ids shown as ``…``).
``test_every_block_is_run_or_skipped_on_purpose`` fails on any block that is neither.
"""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.docs import django_setup
from tests.docs.markdown import ROOT, RUNNABLE, Block, blocks, documents
from tests.docs.world import ENV_PROVIDERS, PROVIDERS, World, database
from upsync.config import load_settings
from upsync.testing.stripe import RunningStandin, generate, run_standin

SHOWN = frozenset({"text", "json", "sql", "toml", "http"})
"""Fence languages that show output, data or other languages' code: never run."""

CURL_FAILS_ON_HTTP_ERRORS = 'curl() { command curl --fail-with-body "$@"; }\n'


@pytest.fixture(scope="module")
def standin() -> Iterator[RunningStandin]:
    """A Stripe account with a few customers and subscriptions, shared by the documents."""
    with run_standin(seed=1, rate_limit=None) as running:
        generate(running.store, customers=30, seed=1)
        yield running


@pytest.fixture
def new_world(
    pg_dsn: str, standin: RunningStandin, tmp_path: Path
) -> Iterator[Callable[[], World]]:
    """Make worlds (each with its own database); all are closed after the test."""
    made: list[tuple[World, Any]] = []

    def make() -> World:
        db = database(pg_dsn)
        world = World(db.__enter__(), pg_dsn, standin, tmp_path / f"home{len(made)}")
        made.append((world, db))
        return world

    yield make
    for world, db in reversed(made):
        world.close()
        db.__exit__(None, None, None)


def _doc_ids() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in documents()]


@pytest.mark.parametrize("doc", _doc_ids())
def test_examples_run(doc: str, new_world: Callable[[], World]) -> None:
    world = new_world()
    namespace = _namespace()
    ran = skipped = 0
    for block in blocks(ROOT / doc):
        if block.lang not in RUNNABLE:
            continue
        if block.skip:
            skipped += 1
            continue
        if block.fresh:
            _run(block, new_world(), _namespace())
        else:
            _run(block, world, namespace)
        ran += 1
    print(f"{doc}: {ran} block(s) run, {skipped} skipped on purpose")


def _namespace() -> dict[str, Any]:
    # a module name inside the docs' Django app, so a Django model in an example belongs to it
    return {"__name__": django_setup.MODULE}


def _run(block: Block, world: World, namespace: dict[str, Any]) -> None:
    if block.lang == "python":
        for name in block.setup:
            namespace[name] = PROVIDERS[name](world)
        over = world.interrupt_when_drained(block.interrupt) if block.interrupt else None
        try:
            _run_python(block, world, namespace)
        finally:
            if over is not None:
                over.set()
    else:
        env = {**world.env(), **{name: ENV_PROVIDERS[name](world) for name in block.setup}}
        _run_shell(block, env, world.home)
    for name in block.checks:
        CHECKS[name](world, namespace)


def _run_python(block: Block, world: World, namespace: dict[str, Any]) -> None:
    code = compile(
        block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    result = eval(code, namespace)
    if inspect.iscoroutine(result):
        world.runner.run(result)


def _run_shell(block: Block, env: dict[str, str], work_dir: Path) -> None:
    script = _console_commands(block.code) if block.lang == "console" else block.code
    for tool in ["bash", *(t for t in ("curl", "jq") if t in script)]:
        assert shutil.which(tool, path=env["PATH"]), (
            f"{block.where} needs `{tool}`: install it to run the documentation's examples"
        )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", CURL_FAILS_ON_HTTP_ERRORS + script],
        cwd=work_dir,
        input=env.get("STRIPE_KEY", "") + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    output = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"{block.where} failed:\n{script}\n…{output}"


def _console_commands(text: str) -> str:
    """The commands of a console transcript: ``$`` lines and their ``\\`` continuations."""
    commands: list[str] = []
    continued = False
    for line in text.splitlines():
        if continued:
            commands.append(line)
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue
        continued = line.rstrip().endswith("\\")
    return "\n".join(commands) + "\n"


def _subscription_quantities(world: World, table: str) -> None:
    """Every synced subscription is in ``table`` with Stripe's quantity (never NULL)."""
    with psycopg.connect(world.dsn) as conn:
        rows = conn.execute(
            psycopg.sql.SQL("SELECT upstream_id, quantity FROM {}").format(
                psycopg.sql.Identifier(*table.split("."))
            )
        ).fetchall()
    store = world.standin.store
    expected = {s["id"]: s["items"]["data"][0]["quantity"] for s in store.live("subscription")}
    assert rows, f"{table} is empty"
    assert [r for r in rows if r[1] is None] == [], "quantity mapped to NULL"
    assert dict(rows) == expected


def _worker_drained(world: World, namespace: dict[str, Any]) -> None:
    info = world.consumer_info("subscriptions-worker")
    assert (info["num_pending"], info["num_ack_pending"]) == (0, 0), info


CHECKS: dict[str, Callable[[World, dict[str, Any]], None]] = {
    "subscriptions-quantity": lambda w, ns: _subscription_quantities(w, "subscriptions"),
    "worker-drained": _worker_drained,
}
"""What the documents claim, asserted after the block that names it with ``check NAME``."""


@pytest.mark.parametrize("doc", _doc_ids())
def test_every_block_is_run_or_skipped_on_purpose(doc: str) -> None:
    """A block is an example to run, output to show, or marked skip with a reason."""
    for block in blocks(ROOT / doc):
        assert block.lang in RUNNABLE | SHOWN, (
            f"{block.where}: fence language {block.lang!r}: label it (python, sh, console to "
            f"run; one of {sorted(SHOWN)} for output or data)"
        )
        directive = block.skip or block.setup or block.fresh or block.checks
        assert block.lang in RUNNABLE or not directive, f"{block.where}: nothing runs here"
        assert not (block.skip and (block.setup or block.checks)), f"{block.where}: skipped"
        providers = PROVIDERS if block.lang == "python" else ENV_PROVIDERS
        unknown = [n for n in block.setup if n not in providers]
        assert not unknown, f"{block.where}: no provider for {unknown}; known: {list(providers)}"
        unknown = [n for n in block.checks if n not in CHECKS]
        assert not unknown, f"{block.where}: no check named {unknown}"


def test_readme_asserts_the_subscription_quantity() -> None:
    """The README's first example is the regression test for the NULL ``quantity`` mapping."""
    first = next(b for b in blocks(ROOT / "README.md") if b.lang == "python")
    assert "subscriptions-quantity" in first.checks and not first.skip


def test_toml_examples_are_valid_settings_files(tmp_path: Path) -> None:
    """A settings file shown in the docs loads: valid TOML, known keys, values that parse."""
    shown = [b for doc in documents() for b in blocks(doc) if b.lang == "toml"]
    assert shown, "docs/configuration.md shows a settings file"
    for block in shown:
        file = tmp_path / "upsync.toml"
        file.write_text(block.code)
        load_settings({}, env={}, config_file=file)
