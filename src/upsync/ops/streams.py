"""Streams: create, read (by id or name), list, delete."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upsync.errors import NotFound
from upsync.ops.limits import check_metadata, check_name
from upsync.stream import catalog
from upsync.stream._sql import DEFAULT_SCHEMA, AConn
from upsync.stream.models import Stream

__all__ = ["create_stream", "delete_stream", "list_streams", "resolve_stream"]


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
