"""How commands print: rich tables for people, ``--json`` for scripts.

JSON goes to stdout as one document with stable keys; messages for people (what was done,
what to do next) go to stderr, so ``--json`` output and printed tokens stay clean to pipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

__all__ = ["ago", "echo_json", "json_option", "note", "print_fields", "print_table", "when"]

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    """The ``--json`` flag of listing and status commands."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (stable keys) for scripts."
    )(f)


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def note(message: str) -> None:
    """A line for the person at the terminal (stderr)."""
    click.echo(message, err=True)


def print_fields(fields: Iterable[tuple[str, Any]]) -> None:
    """``name: value`` lines on stdout; objects and lists as compact JSON."""
    for name, value in fields:
        if isinstance(value, dict | list):
            shown = json.dumps(value, sort_keys=True, default=str)
        else:
            shown = _cell(value)
        click.echo(f"{name + ':':<18} {shown}")


def print_table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], empty: str
) -> None:
    """A table on stdout, or ``empty`` when there are no rows."""
    rows = [[_cell(v) for v in row] for row in rows]
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped: no terminal to fit, keep ids on one line
    if not rows:
        console.print(empty)
        return
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return when(value)
    return str(value)


def when(value: datetime | None) -> str:
    """A timestamp for a person: UTC, to the second, with how long ago."""
    if value is None:
        return "-"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z ({ago(value)})"


def ago(value: datetime) -> str:
    """``"3m ago"`` and the like."""
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
