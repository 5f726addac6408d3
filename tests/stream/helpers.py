"""Small readers of upsync's tables for assertions (tests only)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

AConn = psycopg.AsyncConnection[Any]


async def table(conn: AConn, schema: str, name: str, order: str = "1") -> list[dict[str, Any]]:
    """Every row of ``schema.name`` as dicts, ordered by column ``order``."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            sql.SQL("SELECT * FROM {} ORDER BY {}").format(
                sql.Identifier(schema, name), sql.Identifier(order)
            )
            if order != "1"
            else sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, name))
        )
        rows = await cur.fetchall()
    await conn.commit()
    return rows


async def records(conn: AConn, schema: str) -> dict[str, dict[str, Any]]:
    """The records table keyed by upstream id."""
    return {r["upstream_id"]: r for r in await table(conn, schema, "records", "updated_idx")}


class RoundTrips:
    """Counts the server's ReadyForQuery messages on a connection (one per round trip),
    from libpq's protocol trace."""

    def __init__(self, conn: AConn) -> None:
        self._conn = conn
        self.count = 0

    def __enter__(self) -> RoundTrips:
        import tempfile

        self._file = tempfile.TemporaryFile("w+")
        self._conn.pgconn.trace(self._file.fileno())
        return self

    def __exit__(self, *_: object) -> None:
        self._conn.pgconn.untrace()
        self._file.seek(0)
        self.count = sum("\tB\t" in line and "ReadyForQuery" in line for line in self._file)
        self._file.close()
