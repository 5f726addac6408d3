"""Code blocks of the documentation, with the directives that say how a test runs them.

A directive is an HTML comment on the line right before a fence (blank lines between are
allowed), invisible in rendered Markdown:

    <!-- example: skip (why it cannot run here) -->
    <!-- example: setup dsn, payload; check readme-quantity -->
    <!-- example: fresh; setup conn, stream -->

- ``skip (reason)``: deliberately not run; the reason is required, and nothing else may follow.
- ``setup a, b``: names the document leaves to the reader (a DSN, a payload …); the harness
  defines them just before the block runs (``tests/docs/world.py`` lists them).
- ``fresh``: the block is self-contained: it runs on a database and namespace of its own.
- ``ctrl-c-when-drained CONSUMER``: the block runs a worker until Ctrl-C; the harness sends
  SIGINT once ``CONSUMER`` has nothing pending or held.
- ``check NAME``: after the block, the harness asserts what the document claims
  (``CHECKS`` in ``tests/docs/test_examples.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RUNNABLE", "Block", "DirectiveError", "blocks", "documents"]

ROOT = Path(__file__).resolve().parents[2]

RUNNABLE = frozenset({"python", "sh", "bash", "console"})
"""Fence languages that are examples to run (``text``, ``json``, ``sql`` … are shown output)."""

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*example:(?P<body>.*?)-->\s*$")
_SKIP = re.compile(r"^skip\s*\((?P<reason>.+)\)$")


class DirectiveError(ValueError):
    """A malformed ``<!-- example: … -->`` comment."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document."""

    path: Path
    line: int
    """1-based line of the opening fence"""
    lang: str
    code: str
    skip: str | None = None
    setup: tuple[str, ...] = ()
    fresh: bool = False
    checks: tuple[str, ...] = field(default=())
    interrupt: str | None = None
    """a consumer: send SIGINT once it is drained (the block runs a worker until Ctrl-C)"""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``, in order, with its directive applied."""
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = _closing(lines, i, path)
        indent = len(fence["indent"])
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        out.append(_with_directive(Block(path, i + 1, fence["lang"], code), lines, i))
        i = end + 1
    return out


def _closing(lines: list[str], start: int, path: Path) -> int:
    for j in range(start + 1, len(lines)):
        if lines[j].strip() == "```":
            return j
    raise DirectiveError(f"{path}:{start + 1}: code block never closed")


def _with_directive(block: Block, lines: list[str], fence: int) -> Block:
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    found = _DIRECTIVE.match(lines[j]) if j >= 0 else None
    if not found:
        return block
    body = found["body"].strip()
    if body.startswith("skip"):  # the reason is free text, semicolons included
        if (m := _SKIP.match(body)) is None:
            raise DirectiveError(f"{block.where}: write the reason: skip (why)")
        return Block(block.path, block.line, block.lang, block.code, skip=m["reason"].strip())
    setup: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()
    fresh = False
    interrupt = None
    for item in (p.strip() for p in body.split(";")):
        if item.startswith("ctrl-c-when-drained "):
            interrupt = item.split(None, 1)[1].strip()
        elif item.startswith("setup "):
            setup = tuple(n.strip() for n in item[len("setup ") :].split(",") if n.strip())
        elif item == "fresh":
            fresh = True
        elif item.startswith("check "):
            checks = (*checks, item[len("check ") :].strip())
        else:
            raise DirectiveError(f"{block.where}: unknown example directive {item!r}")
    return Block(
        block.path, block.line, block.lang, block.code, None, setup, fresh, checks, interrupt
    )
