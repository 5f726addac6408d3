"""Apply a :class:`~upsync.sinks.table.TableSink` batch on drivers other than psycopg 3.

psycopg 3 connections go straight to :meth:`TableSink.apply` (COPY-based, the fastest path).
The others run the same algorithm (:mod:`upsync.sinks._executor`) through their own fastest
upsert path: asyncpg a prepared statement's pipelined ``fetchmany``; psycopg2 one multi-row
``VALUES`` statement per chunk (``execute_values``); other DB-API drivers with ``%s``
placeholders one ``execute`` per row.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from upsync.records import Record
from upsync.sinks._executor import Many, Refused, Steps, is_row_fault, render, steps

if TYPE_CHECKING:
    from upsync.sinks.table import ApplyResult, TableSink

__all__ = ["apply_asyncpg", "apply_dbapi"]


def apply_dbapi(
    sink: TableSink,
    conn: Any,
    records: Iterable[Record],
    *,
    error: type[Exception],
    nested: bool,
) -> ApplyResult:
    """Apply on a DB-API connection with ``%s`` placeholders (psycopg2, pg8000 …).

    ``nested``: the connection is inside the caller's transaction, so the batch runs in a
    savepoint and nothing is committed. Otherwise the connection must be in autocommit mode and
    the batch is its own transaction, committed on success. ``error`` is the driver's base
    exception class (PEP 249 ``Error``).
    """
    cur = conn.cursor()
    begin, ok, undo = _transaction_sql(nested)
    cur.execute(begin)
    try:
        many = _psycopg2_many if type(conn).__module__.startswith("psycopg2") else _row_by_row
        result = _drive_dbapi(cur, steps(sink, records), error, many)
    except BaseException:
        with contextlib.suppress(Exception):  # the original error is the one to report
            cur.execute(undo)
        raise
    cur.execute(ok)
    return result  # type: ignore[no-any-return]


ManyFn = Callable[[Any, str, Sequence[Sequence[Any]]], list[Any]]


def _row_by_row(cur: Any, text: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
    out: list[Any] = []
    for row in rows:
        cur.execute(text, row)
        out.extend(cur.fetchall())
    return out


# the one-row VALUES list of an upsert: ``(%s, %s, …)``, placeholders possibly cast
_VALUES_ROW = re.compile(r"VALUES (\(%s(?:::[\w \[\].\"]+)?(?:, %s(?:::[\w \[\].\"]+)?)*\))")


def _psycopg2_many(cur: Any, text: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """All rows in one multi-row ``VALUES`` statement (psycopg2's ``execute_values``)."""
    found = _VALUES_ROW.findall(text)
    if len(found) != 1 or not rows or found[0].count("%s") != len(rows[0]):
        return _row_by_row(cur, text, rows)
    extras: Any = importlib.import_module("psycopg2.extras")
    multi = _VALUES_ROW.sub(lambda _: "VALUES %s", text, count=1)
    result: list[Any] = extras.execute_values(
        cur, multi, rows, template=found[0], page_size=len(rows), fetch=True
    )
    return result


def _drive_dbapi(cur: Any, ops: Steps, error: type[Exception], many: ManyFn) -> Any:
    result: Any = None
    refused: Refused | None = None
    while True:
        try:
            op = ops.throw(refused) if refused is not None else ops.send(result)
        except StopIteration as stop:
            return stop.value
        refused = None
        try:
            if isinstance(op, Many):
                result = many(cur, render(op.stmt, "format"), op.rows)
            else:
                cur.execute(render(op.stmt, "format"), op.params)
                result = cur.fetchall() if cur.description is not None else []
        except error as e:
            refused = _dbapi_refused(e)


def _dbapi_refused(e: Exception) -> Refused:
    sqlstate = getattr(e, "pgcode", None) or getattr(e, "sqlstate", None)
    if not is_row_fault(sqlstate):
        raise e
    diag = getattr(e, "diag", None)
    reason = getattr(diag, "message_primary", None) or str(e).strip()
    detail = getattr(diag, "message_detail", None)
    return Refused(f"{reason} ({detail})" if detail else reason, sqlstate)


async def apply_asyncpg(
    sink: TableSink, conn: Any, records: Iterable[Record], *, nested: bool
) -> ApplyResult:
    """Apply on an ``asyncpg.Connection``; ``nested`` as for :func:`apply_dbapi`.

    Without ``nested`` the connection must not be in a transaction (asyncpg is autocommit
    unless told otherwise); the batch is then its own transaction.
    """
    begin, ok, undo = _transaction_sql(nested)
    await conn.execute(begin)
    try:
        result = await _drive_asyncpg(conn, steps(sink, records))
    except BaseException:
        with contextlib.suppress(Exception):  # the original error is the one to report
            await conn.execute(undo)
        raise
    await conn.execute(ok)
    return result  # type: ignore[no-any-return]


async def _drive_asyncpg(conn: Any, ops: Steps) -> Any:
    asyncpg: Any = importlib.import_module("asyncpg")
    prepared: dict[str, Any] = {}
    result: Any = None
    refused: Refused | None = None
    while True:
        try:
            op = ops.throw(refused) if refused is not None else ops.send(result)
        except StopIteration as stop:
            return stop.value
        refused = None
        text = render(op.stmt, "numeric")
        try:
            if isinstance(op, Many):
                stmt = prepared.get(text)
                if stmt is None:
                    stmt = prepared[text] = await conn.prepare(text)
                result = [tuple(r) for r in await stmt.fetchmany(op.rows)]
            elif op.params is None:
                await conn.execute(text)
                result = []
            else:
                result = [tuple(r) for r in await conn.fetch(text, *op.params)]
        except asyncpg.PostgresError as e:
            if not is_row_fault(e.sqlstate):
                raise
            detail = getattr(e, "detail", None)
            refused = Refused(f"{e.message} ({detail})" if detail else e.message, e.sqlstate)
        except asyncpg.DataError as e:
            # asyncpg checks Python types before sending: the row's value does not fit
            refused = Refused(str(e), None)


def _transaction_sql(nested: bool) -> tuple[str, str, str]:
    if nested:
        return (
            "SAVEPOINT upsync_batch",
            "RELEASE SAVEPOINT upsync_batch",
            "ROLLBACK TO SAVEPOINT upsync_batch; RELEASE SAVEPOINT upsync_batch",
        )
    return "BEGIN", "COMMIT", "ROLLBACK"
