"""Streams, credentials and syncs: create, list, get, update, delete (connection-level).

Each function runs on the caller's connection inside ``conn.transaction()`` (a savepoint when a
transaction is already open). Unknown ids raise :class:`~upsync.errors.NotFound`; a secret is
stored but never returned by anything here except :func:`reveal_secret`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from upsync.errors import ConfigurationError, NotFound
from upsync.stream.models import Credential, Stream, Sync
from upsync.stream.tables import DEFAULT_SCHEMA, AConn, q

_UNSET: Any = object()


def as_uuid(value: str, what: str) -> str:
    """``value`` as a canonical uuid string, or :class:`NotFound` naming ``what``."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"{what} {value!r} not found (not a valid id)") from None


async def _one(conn: AConn, query: Any, params: Any) -> dict[str, Any] | None:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def _all(conn: AConn, query: Any, params: Any) -> list[dict[str, Any]]:
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


def _stream(row: dict[str, Any]) -> Stream:
    return Stream(
        id=str(row["id"]),
        name=row["name"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create_stream(
    conn: AConn,
    name: str,
    *,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> Stream:
    """Create a stream; its name is unique."""
    row = await _one(
        conn,
        q(
            schema,
            "INSERT INTO {streams} (name, metadata) VALUES (%s, %s) "
            "ON CONFLICT (name) DO NOTHING RETURNING *",
        ),
        [name, Jsonb(dict(metadata or {}))],
    )
    if row is None:
        raise ConfigurationError(f"a stream named {name!r} already exists")
    return _stream(row)


async def get_stream(conn: AConn, id_or_name: str, *, schema: str = DEFAULT_SCHEMA) -> Stream:
    """The stream with that id or name."""
    row = await _one(
        conn,
        q(schema, "SELECT * FROM {streams} WHERE id::text = %s OR name = %s"),
        [id_or_name, id_or_name],
    )
    if row is None:
        raise NotFound(f"stream {id_or_name!r} not found")
    return _stream(row)


async def list_streams(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> list[Stream]:
    """Every stream, oldest first."""
    rows = await _all(conn, q(schema, "SELECT * FROM {streams} ORDER BY created_at, id"), [])
    return [_stream(r) for r in rows]


async def delete_stream(conn: AConn, stream_id: str, *, schema: str = DEFAULT_SCHEMA) -> None:
    """Delete an empty stream (no syncs, no consumers)."""
    sid = as_uuid(stream_id, "stream")
    async with conn.transaction():
        busy = await _one(
            conn,
            q(
                schema,
                "SELECT (SELECT count(*) FROM {syncs} WHERE stream_id = %(s)s) AS syncs, "
                "(SELECT count(*) FROM {consumers} WHERE stream_id = %(s)s) AS consumers",
            ),
            {"s": sid},
        )
        assert busy is not None
        if busy["syncs"] or busy["consumers"]:
            raise ConfigurationError(
                f"stream {stream_id} still has {busy['syncs']} sync(s) and "
                f"{busy['consumers']} consumer(s); delete them first"
            )
        cur = await conn.execute(q(schema, "DELETE FROM {streams} WHERE id = %s"), [sid])
        if cur.rowcount == 0:
            raise NotFound(f"stream {stream_id!r} not found")
        await conn.execute(q(schema, "DELETE FROM {events} WHERE stream_id = %s"), [sid])
        await conn.execute(q(schema, "DELETE FROM {records} WHERE stream_id = %s"), [sid])


def _credential(row: dict[str, Any]) -> Credential:
    return Credential(
        id=str(row["id"]),
        provider=row["provider"],
        kind=row["kind"],
        name=row["name"],
        test=row["test"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create_credential(
    conn: AConn,
    *,
    provider: str,
    kind: str,
    secret: str,
    name: str | None = None,
    test: bool = False,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> Credential:
    """Store a credential. The returned value (and every listing) masks the secret."""
    if not secret:
        raise ConfigurationError("credential.properties.secret: expected a non-empty string")
    row = await _one(
        conn,
        q(
            schema,
            "INSERT INTO {credentials} (provider, kind, name, secret, test, metadata) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING {credential_cols}",
        ),
        [provider, kind, name, secret, test, Jsonb(dict(metadata or {}))],
    )
    assert row is not None
    return _credential(row)


async def get_credential(
    conn: AConn, credential_id: str, *, schema: str = DEFAULT_SCHEMA
) -> Credential:
    cid = as_uuid(credential_id, "credential")
    row = await _one(
        conn, q(schema, "SELECT {credential_cols} FROM {credentials} WHERE id = %s"), [cid]
    )
    if row is None:
        raise NotFound(f"credential {credential_id!r} not found")
    return _credential(row)


async def list_credentials(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> list[Credential]:
    rows = await _all(
        conn,
        q(schema, "SELECT {credential_cols} FROM {credentials} ORDER BY created_at, id"),
        [],
    )
    return [_credential(r) for r in rows]


async def reveal_secret(conn: AConn, credential_id: str, *, schema: str = DEFAULT_SCHEMA) -> str:
    """The secret in clear, for the code that calls the upstream API. Never log or return it."""
    cid = as_uuid(credential_id, "credential")
    row = await _one(conn, q(schema, "SELECT secret FROM {credentials} WHERE id = %s"), [cid])
    if row is None:
        raise NotFound(f"credential {credential_id!r} not found")
    return str(row["secret"])


async def delete_credential(
    conn: AConn, credential_id: str, *, schema: str = DEFAULT_SCHEMA
) -> None:
    cid = as_uuid(credential_id, "credential")
    async with conn.transaction():
        used = await _one(
            conn, q(schema, "SELECT count(*) AS n FROM {syncs} WHERE credential_id = %s"), [cid]
        )
        if used and used["n"]:
            raise ConfigurationError(f"credential {credential_id} is used by {used['n']} sync(s)")
        cur = await conn.execute(q(schema, "DELETE FROM {credentials} WHERE id = %s"), [cid])
        if cur.rowcount == 0:
            raise NotFound(f"credential {credential_id!r} not found")


def _sync(row: dict[str, Any]) -> Sync:
    return Sync(
        id=str(row["id"]),
        stream_id=str(row["stream_id"]),
        provider=row["provider"],
        name=row["name"],
        collection_ids=tuple(row["collection_ids"]),
        external_id=row["external_id"],
        metadata=row["metadata"],
        status=row["status"],
        cursors=row["cursors"],
        initial_backfill_completed_at=row["initial_backfill_completed_at"],
        rate_limit=row["rate_limit"],
        credential_id=None if row["credential_id"] is None else str(row["credential_id"]),
        max_age_days=row["max_age_days"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        health=row.get("health"),
    )


def _check_collections(provider: str, collection_ids: Sequence[str]) -> list[str]:
    out = []
    for cid in collection_ids:
        prefix, sep, rest = cid.partition(":")
        if not sep or not rest or prefix != provider:
            raise ConfigurationError(
                f"collection_ids: {cid!r} is not '{provider}:<name>' (e.g. '{provider}:customer')"
            )
        out.append(cid)
    return out


async def create_sync(
    conn: AConn,
    *,
    stream_id: str,
    provider: str,
    name: str,
    collection_ids: Sequence[str],
    external_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    credential_id: str | None = None,
    rate_limit: Mapping[str, Any] | None = None,
    max_age_days: int | None = None,
    status: str = "active",
    schema: str = DEFAULT_SCHEMA,
) -> Sync:
    """Create a sync writing into ``stream_id``."""
    stream = await get_stream(conn, as_uuid(stream_id, "stream"), schema=schema)
    cred = (
        None
        if credential_id is None
        else (await get_credential(conn, credential_id, schema=schema)).id
    )
    row = await _one(
        conn,
        q(
            schema,
            "INSERT INTO {syncs} (stream_id, provider, name, collection_ids, external_id, "
            "metadata, credential_id, rate_limit, max_age_days, status) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        ),
        [
            stream.id,
            provider,
            name,
            _check_collections(provider, collection_ids),
            external_id,
            Jsonb(dict(metadata or {})),
            cred,
            None if rate_limit is None else Jsonb(dict(rate_limit)),
            max_age_days,
            _check_status(status),
        ],
    )
    assert row is not None
    return _sync(row)


def _check_status(status: str) -> str:
    if status not in ("active", "disabled"):
        raise ConfigurationError(f"status: expected 'active' or 'disabled', got {status!r}")
    return status


async def get_sync(conn: AConn, sync_id: str, *, schema: str = DEFAULT_SCHEMA) -> Sync:
    sid = as_uuid(sync_id, "sync")
    row = await _one(conn, q(schema, "SELECT * FROM {syncs} WHERE id = %s"), [sid])
    if row is None:
        raise NotFound(f"sync {sync_id!r} not found")
    return _sync(row)


async def list_syncs(
    conn: AConn,
    *,
    stream_id: str | None = None,
    provider: str | None = None,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> list[Sync]:
    """Syncs, oldest first; each given filter must match (``metadata``: containment)."""
    rows = await _all(
        conn,
        q(
            schema,
            "SELECT * FROM {syncs} WHERE (%(stream)s::uuid IS NULL OR stream_id = %(stream)s) "
            "AND (%(provider)s::text IS NULL OR provider = %(provider)s) "
            "AND (%(name)s::text IS NULL OR name = %(name)s) "
            "AND (%(meta)s::jsonb IS NULL OR metadata @> %(meta)s) ORDER BY created_at, id",
        ),
        {
            "stream": None if stream_id is None else as_uuid(stream_id, "stream"),
            "provider": provider,
            "name": name,
            "meta": None if metadata is None else Jsonb(dict(metadata)),
        },
    )
    return [_sync(r) for r in rows]


async def update_sync(
    conn: AConn,
    sync_id: str,
    *,
    name: str = _UNSET,
    collection_ids: Sequence[str] = _UNSET,
    external_id: str | None = _UNSET,
    metadata: Mapping[str, Any] = _UNSET,
    status: str = _UNSET,
    cursors: Mapping[str, Any] = _UNSET,
    initial_backfill_completed_at: Any = _UNSET,
    rate_limit: Mapping[str, Any] | None = _UNSET,
    credential_id: str | None = _UNSET,
    schema: str = DEFAULT_SCHEMA,
) -> Sync:
    """Change the given fields only; ``cursors`` replaces the whole cursor object."""
    current = await get_sync(conn, sync_id, schema=schema)
    values: dict[str, Any] = {}
    if name is not _UNSET:
        values["name"] = name
    if collection_ids is not _UNSET:
        values["collection_ids"] = _check_collections(current.provider, collection_ids)
    if external_id is not _UNSET:
        values["external_id"] = external_id
    if metadata is not _UNSET:
        values["metadata"] = Jsonb(dict(metadata))
    if status is not _UNSET:
        values["status"] = _check_status(status)
    if cursors is not _UNSET:
        values["cursors"] = Jsonb(dict(cursors))
    if initial_backfill_completed_at is not _UNSET:
        values["initial_backfill_completed_at"] = initial_backfill_completed_at
    if rate_limit is not _UNSET:
        values["rate_limit"] = None if rate_limit is None else Jsonb(dict(rate_limit))
    if credential_id is not _UNSET:
        values["credential_id"] = (
            None
            if credential_id is None
            else (await get_credential(conn, credential_id, schema=schema)).id
        )
    if not values:
        return current
    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in values
    )
    query = sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE id = {} RETURNING *").format(
        sql.Identifier(schema, "syncs"), sets, sql.Placeholder("_id")
    )
    row = await _one(conn, query, {**values, "_id": current.id})
    assert row is not None
    return _sync(row)


async def delete_sync(conn: AConn, sync_id: str, *, schema: str = DEFAULT_SCHEMA) -> None:
    """Delete a sync. Its records stay in the stream (consumers may still need them)."""
    sid = as_uuid(sync_id, "sync")
    async with conn.transaction():
        cur = await conn.execute(q(schema, "DELETE FROM {syncs} WHERE id = %s"), [sid])
        if cur.rowcount == 0:
            raise NotFound(f"sync {sync_id!r} not found")


async def record_sync_health(
    conn: AConn, sync_id: str, health: Mapping[str, Any] | None, *, schema: str = DEFAULT_SCHEMA
) -> None:
    """Store the engine's view of a sync (state, last error) for other processes to read.

    Leaves ``updated_at`` alone: this is the engine's observation, not a change of settings.
    """
    await conn.execute(
        q(schema, "UPDATE {syncs} SET health = %s WHERE id = %s"),
        [None if health is None else Jsonb(dict(health)), as_uuid(sync_id, "sync")],
    )
