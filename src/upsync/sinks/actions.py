"""The operations the apply steps yield, what a driver can do, and the loops that run them.

The split follows psycopg's ``generators.py`` / ``waiting.py``: :mod:`upsync.sinks.steps` is a
generator that yields :class:`Query`, :class:`Copy` and :class:`Many` and receives their
results; a driver only performs one operation at a time, in a function given to :func:`drive`
(or :func:`drive_async`). A driver turns its own errors into a
:class:`~upsync.sinks.faults.DbFailure`, which is thrown into the steps; one they do not handle
comes back out as the driver's own exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from upsync.sinks.faults import DbFailure

__all__ = ["Capabilities", "Copy", "Many", "Op", "Query", "Steps", "drive", "drive_async"]


@dataclass(frozen=True)
class Capabilities:
    """What a driver can do beyond running a statement with parameters."""

    copy: bool = False
    """``COPY … FROM STDIN`` (text format) from a row iterator. With it, large chunks go by
    ``COPY`` (straight into the table, or into a staging table and one guarded merge); without
    it, every chunk goes by the pipelined guarded upsert (:class:`Many`)."""


@dataclass(frozen=True)
class Query:
    """Run one statement; the driver sends back its rows as tuples (``[]`` if none)."""

    stmt: sql.Composed | sql.SQL | str
    params: Sequence[Any] | None = None


@dataclass(frozen=True)
class Copy:
    """``COPY … FROM STDIN`` the rows (text format); the driver sends back ``None``."""

    stmt: sql.Composed
    rows: Iterable[Sequence[Any]]


@dataclass(frozen=True)
class Many:
    """Run the statement once per row, pipelined; the driver sends back every returned row.

    Rows are all text (or ``None``): the statement casts each parameter to its column's type.
    """

    stmt: sql.Composed
    rows: Iterable[Sequence[str | None]]


Op = Query | Copy | Many
Steps = Generator[Op, Any, Any]


def drive(steps: Steps, perform: Callable[[Op], Any]) -> Any:
    """Run ``steps`` to the end, performing each operation with ``perform``; their result."""
    done, item = _advance(steps, None, None)
    while not done:
        try:
            value, failure = perform(item), None
        except DbFailure as e:
            value, failure = None, e
        done, item = _advance(steps, value, failure)
    return item


async def drive_async(steps: Steps, perform: Callable[[Op], Awaitable[Any]]) -> Any:
    """:func:`drive` with an async ``perform``."""
    done, item = _advance(steps, None, None)
    while not done:
        try:
            value, failure = await perform(item), None
        except DbFailure as e:
            value, failure = None, e
        done, item = _advance(steps, value, failure)
    return item


def _advance(steps: Steps, value: Any, failure: DbFailure | None) -> tuple[bool, Any]:
    """Send the last result (or throw its failure) in: ``(True, result)`` at the end, else
    ``(False, next operation)``. A failure the steps let out is raised as the driver's error."""
    try:
        op = steps.send(value) if failure is None else steps.throw(failure)
    except StopIteration as stop:
        return True, stop.value
    except DbFailure as unhandled:
        error = unhandled.error
    else:
        return False, op
    raise error
