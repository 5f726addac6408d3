"""The asyncpg and DB-API drivers of the apply steps (psycopg 3 has :mod:`upsync.sinks.apply`).

They only perform the operations :func:`~upsync.sinks.steps.apply_steps` yields, through each
driver's fastest upsert path: asyncpg a prepared statement's pipelined ``fetchmany``; psycopg2
one multi-row ``VALUES`` statement per chunk (``execute_values``); other DB-API drivers with
``%s`` placeholders one ``execute`` per row. None of them ``COPY`` here.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from psycopg import sql

from upsync.errors import ConfigurationError
from upsync.records import Record
from upsync.sinks.actions import Capabilities, Copy, Many, Op, Query, drive, drive_async
from upsync.sinks.faults import DbFailure
from upsync.sinks.result import ApplyResult
from upsync.sinks.steps import ApplySteps

__all__ = ["apply_asyncpg", "apply_dbapi", "render"]

_CAPABILITIES = Capabilities(copy=False)


def render(stmt: sql.Composable | str, style: str) -> str:
    """The statement as text for a driver: ``style`` is ``"format"`` (``%s``) or ``"numeric"``.

    Statements are written with psycopg's ``%s`` placeholders. ``"numeric"`` turns them into
    asyncpg's ``$1, $2, …``; ``"format"`` keeps them and doubles a ``%`` inside a quoted
    identifier or literal, which a DB-API driver would otherwise take for a placeholder.
    """
    text = stmt if isinstance(stmt, str) else stmt.as_string(None)
    out: list[str] = []
    n = 0
    i = 0
    quote: str | None = None
    while i < len(text):
        ch = text[i]
        if quote is not None:
            if ch == quote:
                if text.startswith(quote * 2, i):  # an escaped quote stays inside
                    out.append(quote * 2)
                    i += 2
                    continue
                quote = None
            out.append("%%" if ch == "%" and style == "format" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "%" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in "sbt":
                n += 1
                out.append(f"${n}" if style == "numeric" else "%s")
            elif nxt == "%":
                out.append("%" if style == "numeric" else "%%")
            else:
                raise ConfigurationError(f"unexpected placeholder %{nxt} in {text!r}")
            i += 2
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def apply_dbapi(
    sink: ApplySteps,
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
    many = _psycopg2_many if type(conn).__module__.startswith("psycopg2") else _row_by_row

    def perform(op: Op) -> Any:
        assert not isinstance(op, Copy)
        text = render(op.stmt, "format")
        rows = list(op.rows) if isinstance(op, Many) else None
        try:
            if rows is not None:
                return many(cur, text, rows)
            assert isinstance(op, Query)
            cur.execute(text, op.params)
            return cur.fetchall() if cur.description is not None else []
        except error as e:
            raise _dbapi_failure(e) from None
        except ValueError as e:
            # psycopg2 refuses a NUL character in a string before sending it
            raise DbFailure(e, sqlstate=None, message=str(e), client_side=True) from None

    begin, ok, undo = _transaction_sql(nested)
    cur.execute(begin)
    try:
        result = drive(sink.steps(records, _CAPABILITIES, nested=nested), perform)
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
_CAST = r"(?:::[\w \[\].\"]+)*"
_VALUES_ROW = re.compile(rf"VALUES (\(%s{_CAST}(?:, %s{_CAST})*\))")


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


def _dbapi_failure(e: Exception) -> DbFailure:
    diag = getattr(e, "diag", None)
    sqlstate = getattr(e, "pgcode", None) or getattr(e, "sqlstate", None)
    return DbFailure(
        e,
        sqlstate=sqlstate,
        message=getattr(diag, "message_primary", None) or str(e).strip(),
        detail=getattr(diag, "message_detail", None),
        column=getattr(diag, "column_name", None),
        # the driver refused a value it could not adapt, before sending anything
        client_side=sqlstate is None and type(e).__name__ in ("DataError", "ProgrammingError"),
    )


async def apply_asyncpg(
    sink: ApplySteps, conn: Any, records: Iterable[Record], *, nested: bool
) -> ApplyResult:
    """Apply on an ``asyncpg.Connection``; ``nested`` as for :func:`apply_dbapi`.

    Without ``nested`` the connection must not be in a transaction (asyncpg is autocommit
    unless told otherwise); the batch is then its own transaction.
    """
    asyncpg: Any = importlib.import_module("asyncpg")
    prepared: dict[str, Any] = {}

    async def perform(op: Op) -> Any:
        assert not isinstance(op, Copy)
        text = render(op.stmt, "numeric")
        try:
            if isinstance(op, Many):
                stmt = prepared.get(text)
                if stmt is None:
                    stmt = prepared[text] = await conn.prepare(text)
                return [tuple(r) for r in await stmt.fetchmany(list(op.rows))]
            if op.params is None:
                await conn.execute(text)
                return []
            return [tuple(r) for r in await conn.fetch(text, *op.params)]
        except asyncpg.PostgresError as e:
            detail = getattr(e, "detail", None)
            column = getattr(e, "column_name", None)
            raise DbFailure(
                e, sqlstate=e.sqlstate, message=e.message, detail=detail, column=column
            ) from None
        except asyncpg.DataError as e:
            # asyncpg checks Python types before sending: the row's value does not fit
            raise DbFailure(e, sqlstate=None, message=str(e), client_side=True) from None

    begin, ok, undo = _transaction_sql(nested)
    await conn.execute(begin)
    try:
        result = await drive_async(sink.steps(records, _CAPABILITIES, nested=nested), perform)
    except BaseException:
        with contextlib.suppress(Exception):  # the original error is the one to report
            await conn.execute(undo)
        raise
    await conn.execute(ok)
    return result  # type: ignore[no-any-return]


def _transaction_sql(nested: bool) -> tuple[str, str, str]:
    if nested:
        return (
            "SAVEPOINT upsync_batch",
            "RELEASE SAVEPOINT upsync_batch",
            "ROLLBACK TO SAVEPOINT upsync_batch; RELEASE SAVEPOINT upsync_batch",
        )
    return "BEGIN", "COMMIT", "ROLLBACK"
