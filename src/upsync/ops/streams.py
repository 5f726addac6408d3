"""Streams: create, read (by id or name), list, delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upsync.errors import NotFound
from upsync.ops.limits import check_metadata, check_name
from upsync.stream import catalog
from upsync.stream.migrations import migrate
from upsync.stream.models import Stream
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, q

__all__ = [
    "DEFAULT_STREAM",
    "create_stream",
    "delete_stream",
    "init",
    "list_streams",
    "resolve_stream",
    "stream_counts",
]

#: the stream `upsync init` makes, and the one every command uses unless told otherwise
DEFAULT_STREAM = "default"


async def create_stream(
    conn: AConn,
    name: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> Stream:
    """Create a stream; its name is unique."""
    return await catalog.create_stream(
        conn, check_name(name), metadata=check_metadata(metadata), schema=schema
    )


async def resolve_stream(conn: AConn, id_or_name: str, *, schema: str = DEFAULT_SCHEMA) -> Stream:
    """The stream with that id or name; the error says how to make one."""
    try:
        return await catalog.get_stream(conn, id_or_name, schema=schema)
    except NotFound:
        hint = "run `upsync init`" if id_or_name == "default" else "give an existing id or name"
        raise NotFound(f"stream {id_or_name!r} not found: {hint}") from None


async def list_streams(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> list[Stream]:
    """Every stream, oldest first."""
    return await catalog.list_streams(conn, schema=schema)


async def delete_stream(conn: AConn, id_or_name: str, *, schema: str = DEFAULT_SCHEMA) -> Stream:
    """Delete an empty stream (no syncs, no consumers)."""
    stream = await resolve_stream(conn, id_or_name, schema=schema)
    await catalog.delete_stream(conn, stream.id, schema=schema)
    return stream


async def init(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> tuple[int, bool]:
    """Bring upsync's schema up to date and make the stream ``default`` if missing.

    Returns how many migrations ran and whether the stream was created. Safe to repeat.
    """
    applied = await migrate(conn, schema=schema)
    try:
        await catalog.get_stream(conn, DEFAULT_STREAM, schema=schema)
        return applied, False
    except NotFound:
        await catalog.create_stream(conn, DEFAULT_STREAM, schema=schema)
        return applied, True


_STREAM_COUNTS = """
SELECT s.name,
    (SELECT count(*) FROM {records} r WHERE r.stream_id = s.id),
    (SELECT count(*) FROM {events} e WHERE e.stream_id = s.id)
FROM {streams} s ORDER BY s.name
"""


async def stream_counts(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> list[tuple[str, int, int]]:
    """(stream name, records now, record versions written) of every stream."""
    cur = await conn.execute(q(schema, _STREAM_COUNTS))
    return [(str(n), int(a), int(b)) for n, a, b in await cur.fetchall()]
