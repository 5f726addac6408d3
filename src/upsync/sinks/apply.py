"""The psycopg 3 driver of the apply steps (sync and async): ``COPY``, pipelined
``executemany``, and the caller's transaction or one of its own.

It only performs the operations :func:`~upsync.sinks.steps.apply_steps` yields (see
:mod:`upsync.sinks.actions`); every decision is taken there, the same for every driver.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from upsync.records import Record
from upsync.sinks.actions import Capabilities, Copy, Many, Op, Steps, drive, drive_async
from upsync.sinks.faults import DbFailure
from upsync.sinks.result import ApplyResult
from upsync.sinks.steps import ApplySteps

__all__ = ["CAPABILITIES", "apply", "apply_async", "failure"]

CAPABILITIES = Capabilities(copy=True)


def apply(
    sink: ApplySteps, conn: psycopg.Connection[Any], records: Iterable[Record]
) -> ApplyResult:
    """Apply ``records`` on a sync connection, in one transaction (a savepoint if one is open)."""
    nested = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    with conn.transaction():
        steps = sink.steps(records, CAPABILITIES, nested=nested)
        result: ApplyResult = _drive_sync(conn, steps)
        return result


async def apply_async(
    sink: ApplySteps, conn: psycopg.AsyncConnection[Any], records: Iterable[Record]
) -> ApplyResult:
    """:func:`apply` on an async connection."""
    nested = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    async with conn.transaction():
        steps = sink.steps(records, CAPABILITIES, nested=nested)
        result: ApplyResult = await _drive_async(conn, steps)
        return result


def _drive_sync(conn: psycopg.Connection[Any], steps: Steps) -> Any:
    cur = conn.cursor()

    def perform(op: Op) -> Any:
        try:
            if isinstance(op, Copy):
                with cur.copy(op.stmt) as copy:
                    for row in op.rows:
                        copy.write_row(row)
                return None
            if isinstance(op, Many):
                params = list(op.rows)
                if not params:
                    return []
                cur.executemany(op.stmt, params, returning=True)
                out = cur.fetchall()
                while cur.nextset():
                    out += cur.fetchall()
                return out
            cur.execute(op.stmt, op.params)
            return cur.fetchall() if cur.description is not None else []
        except psycopg.Error as e:
            raise failure(e) from None

    return drive(steps, perform)


async def _drive_async(conn: psycopg.AsyncConnection[Any], steps: Steps) -> Any:
    cur = conn.cursor()

    async def perform(op: Op) -> Any:
        try:
            if isinstance(op, Copy):
                async with cur.copy(op.stmt) as copy:
                    for row in op.rows:
                        await copy.write_row(row)
                return None
            if isinstance(op, Many):
                params = list(op.rows)
                if not params:
                    return []
                await cur.executemany(op.stmt, params, returning=True)
                out = await cur.fetchall()
                while cur.nextset():
                    out += await cur.fetchall()
                return out
            await cur.execute(op.stmt, op.params)
            return await cur.fetchall() if cur.description is not None else []
        except psycopg.Error as e:
            raise failure(e) from None

    return await drive_async(steps, perform)


def failure(e: psycopg.Error) -> DbFailure:
    """A psycopg error as a :class:`DbFailure` (psycopg 3 and psycopg2 share ``diag``)."""
    diag = e.diag
    return DbFailure(
        e,
        sqlstate=e.sqlstate,
        message=diag.message_primary or str(e).strip(),
        detail=diag.message_detail,
        column=diag.column_name,
        # raised by psycopg itself while sending a value (a NUL byte in text, an object it
        # cannot adapt): the row is at fault
        client_side=e.sqlstate is None
        and isinstance(e, psycopg.DataError | psycopg.ProgrammingError),
    )
