"""Architecture rules that would otherwise erode one import at a time (issue #10):

- the HTTP API and the CLI are views over :mod:`upsync.ops`: no module under ``upsync/api`` or
  ``upsync/cli`` executes SQL;
- nothing private is imported from another package: what packages share has a public home.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "upsync"
_SQL_CALLS = {"execute", "executemany", "copy", "cursor"}


def _modules(*parts: str) -> list[Path]:
    found = sorted((SRC.joinpath(*parts)).rglob("*.py"))
    assert found, f"no modules under {parts}"
    return found


def _package(path: Path) -> str:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def _sql_in(source: str) -> list[int]:
    """Lines that run SQL (a call of ``.execute()`` and friends) or build it (``psycopg.sql``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            lines += [node.lineno] if node.func.attr in _SQL_CALLS else []
        elif isinstance(node, ast.ImportFrom) and node.module == "psycopg":
            lines += [node.lineno] if any(a.name == "sql" for a in node.names) else []
    return lines


def _private_imports(source: str, own: str) -> list[int]:
    """Lines importing a private module or name of an upsync package other than ``own``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("upsync."):
            continue
        parts = (node.module or "").split(".")
        if parts[1] == own:
            continue
        private = any(p.startswith("_") for p in parts[1:])
        if private or any(a.name.startswith("_") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_views_run_no_sql() -> None:
    offenders = {
        str(path.relative_to(SRC)): lines
        for path in _modules("api") + _modules("cli")
        if (lines := _sql_in(path.read_text()))
    }
    assert offenders == {}, "SQL belongs in upsync.ops or the stream library"


def test_no_package_imports_another_packages_private_names() -> None:
    offenders = {
        str(path.relative_to(SRC)): lines
        for path in _modules()
        if (lines := _private_imports(path.read_text(), _package(path)))
    }
    assert offenders == {}, "promote what is shared to a public module"


def test_the_rules_see_planted_violations() -> None:
    source = (
        "from psycopg import sql\n"
        "from upsync.stream.tables import _NAMES\n"
        "from upsync.client._calls import UNSET\n"
        "conn.execute(x)\n"
    )
    assert _sql_in(source) == [1, 4]
    assert _private_imports(source, own="cli") == [2, 3]
    assert _private_imports(source, own="client") == [2]
