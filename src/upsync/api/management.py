"""Management API: streams, credentials, syncs and HTTP consumers (create, list, get, update,
delete). Secrets are stored by the stream library and only ever shown as ``"****"``.

Each sync carries a ``health`` block (:mod:`upsync.api.sync_health`): live when this process
runs the sync, else what the database holds."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query

from upsync.api.errors import ApiError
from upsync.api.schemas import (
    ConsumerCreate,
    ConsumerUpdate,
    CredentialCreate,
    StreamCreate,
    SyncCreate,
    SyncCredential,
    SyncUpdate,
)
from upsync.api.state import AConn, Auth, Conn, State
from upsync.api.sync_health import LiveSyncs, health_block, live_syncs
from upsync.stream import catalog, consumers
from upsync.stream.models import Credential, Sync

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Auth], tags=["management"])

Json = dict[str, Any]
MetadataQuery = Annotated[
    str | None,
    Query(
        description='A JSON object; matches items whose metadata contains it, e.g. {"tier":"gold"}'
    ),
]
Live = Annotated[LiveSyncs | None, Depends(live_syncs)]


def _data(items: list[Json]) -> Json:
    return {"data": items}


def _deleted(item_id: str) -> Json:
    return {"id": item_id, "deleted": True}


def _metadata_filter(raw: str | None) -> Json | None:
    if raw is None:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise ApiError(422, 'metadata (query parameter): expected a JSON object, e.g. {"k": 1}')
    return value


# streams


@router.post("/streams")
async def create_stream(body: StreamCreate, conn: Conn, state: State) -> Json:
    stream = await catalog.create_stream(
        conn, body.name, metadata=body.metadata, schema=state.schema
    )
    return stream.to_dict()


@router.get("/streams")
async def list_streams(conn: Conn, state: State) -> Json:
    return _data([s.to_dict() for s in await catalog.list_streams(conn, schema=state.schema)])


@router.get("/streams/{id_or_name}")
async def get_stream(id_or_name: str, conn: Conn, state: State) -> Json:
    return (await catalog.get_stream(conn, id_or_name, schema=state.schema)).to_dict()


@router.delete("/streams/{stream_id}")
async def delete_stream(stream_id: str, conn: Conn, state: State) -> Json:
    stream = await catalog.get_stream(conn, stream_id, schema=state.schema)
    await catalog.delete_stream(conn, stream.id, schema=state.schema)
    return _deleted(stream.id)


# credentials


def _provider_of(body: CredentialCreate) -> str:
    return body.provider or body.properties.kind.partition("_")[0]


async def _create_credential(
    conn: AConn, body: SyncCredential, provider: str, schema: str
) -> Credential:
    props = body.properties
    return await catalog.create_credential(
        conn,
        provider=provider,
        kind=props.kind,
        secret=props.secret,
        name=props.name,
        test=props.test,
        metadata=body.metadata,
        schema=schema,
    )


@router.post("/credentials")
async def create_credential(body: CredentialCreate, conn: Conn, state: State) -> Json:
    credential = await _create_credential(conn, body, _provider_of(body), state.schema)
    return credential.to_dict()


@router.get("/credentials")
async def list_credentials(conn: Conn, state: State) -> Json:
    items = await catalog.list_credentials(conn, schema=state.schema)
    return _data([c.to_dict() for c in items])


@router.get("/credentials/{credential_id}")
async def get_credential(credential_id: str, conn: Conn, state: State) -> Json:
    return (await catalog.get_credential(conn, credential_id, schema=state.schema)).to_dict()


@router.delete("/credentials/{credential_id}")
async def delete_credential(credential_id: str, conn: Conn, state: State) -> Json:
    credential = await catalog.get_credential(conn, credential_id, schema=state.schema)
    await catalog.delete_credential(conn, credential.id, schema=state.schema)
    return _deleted(credential.id)


# syncs


def _sync_dict(sync: Sync, credentials: dict[str, Credential], live: LiveSyncs | None) -> Json:
    out = sync.to_dict()
    cred = credentials.get(sync.credential_id or "")
    out["credential"] = None if cred is None else cred.to_dict()
    running = None if live is None else live.health(sync.id)
    interval = 0.5 if live is None else live.poll_interval
    out["health"] = health_block(sync, running, poll_interval=interval)
    return out


async def _credentials_of(conn: AConn, syncs: list[Sync], schema: str) -> dict[str, Credential]:
    if not any(s.credential_id for s in syncs):
        return {}
    return {c.id: c for c in await catalog.list_credentials(conn, schema=schema)}


def _changed(live: LiveSyncs | None) -> None:
    """Let the engine (if it runs here) start, restart or stop syncs now, not at its next tick."""
    if live is not None:
        live.refresh()


async def _one_sync(conn: AConn, sync: Sync, schema: str, live: LiveSyncs | None) -> Json:
    return _sync_dict(sync, await _credentials_of(conn, [sync], schema), live)


@router.post("/syncs")
async def create_sync(body: SyncCreate, conn: Conn, state: State, live: Live) -> Json:
    async with conn.transaction():
        credential_id = body.credential_id
        if body.credential is not None:
            cred = await _create_credential(conn, body.credential, body.provider, state.schema)
            credential_id = cred.id
        sync = await catalog.create_sync(
            conn,
            stream_id=body.stream_id,
            provider=body.provider,
            name=body.name,
            collection_ids=body.collection_ids,
            external_id=body.external_id,
            metadata=body.metadata,
            credential_id=credential_id,
            rate_limit=None if body.rate_limit is None else body.rate_limit.model_dump(),
            max_age_days=body.max_age_days,
            status=body.status,
            schema=state.schema,
        )
    _changed(live)
    return await _one_sync(conn, sync, state.schema, live)


@router.get("/syncs")
async def list_syncs(
    conn: Conn,
    state: State,
    live: Live,
    provider: str | None = None,
    name: str | None = None,
    stream_id: str | None = None,
    metadata: MetadataQuery = None,
) -> Json:
    syncs = await catalog.list_syncs(
        conn,
        stream_id=stream_id,
        provider=provider,
        name=name,
        metadata=_metadata_filter(metadata),
        schema=state.schema,
    )
    credentials = await _credentials_of(conn, syncs, state.schema)
    return _data([_sync_dict(s, credentials, live) for s in syncs])


@router.get("/syncs/{sync_id}")
async def get_sync(sync_id: str, conn: Conn, state: State, live: Live) -> Json:
    sync = await catalog.get_sync(conn, sync_id, schema=state.schema)
    return await _one_sync(conn, sync, state.schema, live)


@router.put("/syncs/{sync_id}")
@router.patch("/syncs/{sync_id}")
async def update_sync(sync_id: str, body: SyncUpdate, conn: Conn, state: State, live: Live) -> Json:
    """Change the fields given in the body; the others keep their values (PUT and PATCH)."""
    # null clears only what may be empty; for the others it means "unchanged"
    nullable = {"credential_id", "external_id", "rate_limit"}
    changes = {k: v for k, v in body.given().items() if v is not None or k in nullable}
    if "rate_limit" in changes and body.rate_limit is not None:
        changes["rate_limit"] = body.rate_limit.model_dump()
    sync = await catalog.update_sync(conn, sync_id, **changes, schema=state.schema)
    _changed(live)
    return await _one_sync(conn, sync, state.schema, live)


@router.delete("/syncs/{sync_id}")
async def delete_sync(sync_id: str, conn: Conn, state: State, live: Live) -> Json:
    sync = await catalog.get_sync(conn, sync_id, schema=state.schema)
    await catalog.delete_sync(conn, sync.id, schema=state.schema)
    _changed(live)
    return _deleted(sync.id)


# HTTP consumers


@router.post("/http-consumers")
async def create_consumer(body: ConsumerCreate, conn: Conn, state: State) -> Json:
    consumer = await consumers.create_consumer(
        conn,
        stream_id=body.stream_id,
        name=body.name,
        filters=body.filters,
        deliver_policy=body.deliver_policy,
        ack_wait_ms=body.ack_wait_ms,
        max_deliver=body.max_deliver,
        max_ack_pending=body.max_ack_pending,
        metadata=body.metadata,
        schema=state.schema,
    )
    return consumer.to_dict()


@router.get("/http-consumers")
async def list_consumers(
    conn: Conn, state: State, stream_id: str | None = None, metadata: MetadataQuery = None
) -> Json:
    items = await consumers.list_consumers(
        conn, stream_id=stream_id, metadata=_metadata_filter(metadata), schema=state.schema
    )
    return _data([c.to_dict() for c in items if c.kind == "http"])


@router.get("/http-consumers/{id_or_name}")
async def get_consumer(id_or_name: str, conn: Conn, state: State) -> Json:
    return (await consumers.get_consumer(conn, id_or_name, schema=state.schema)).to_dict()


@router.put("/http-consumers/{id_or_name}")
@router.patch("/http-consumers/{id_or_name}")
async def update_consumer(id_or_name: str, body: ConsumerUpdate, conn: Conn, state: State) -> Json:
    """Change the settings given in the body; the others keep their values (PUT and PATCH).

    ``deliver_policy`` applies once, at creation: to re-deliver, use ``POST …/rewind``.
    """
    for fixed in ("deliver_policy", "stream_id"):
        if fixed in body.model_fields_set:
            raise ApiError(
                422,
                f"{fixed}: cannot be changed after creation "
                "(to re-deliver records, POST /v1/http-consumers/{id_or_name}/rewind)",
            )
    changes = {k: v for k, v in body.given().items() if v is not None or k == "filters"}
    if changes.get("filters", "") is None:
        changes["filters"] = {}  # null filters: match everything
    changes.pop("deliver_policy", None)
    changes.pop("stream_id", None)
    consumer = await consumers.get_consumer(conn, id_or_name, schema=state.schema)
    updated = await consumers.update_consumer(conn, consumer, **changes, schema=state.schema)
    return updated.to_dict()


@router.delete("/http-consumers/{id_or_name}")
async def delete_consumer(id_or_name: str, conn: Conn, state: State) -> Json:
    consumer = await consumers.get_consumer(conn, id_or_name, schema=state.schema)
    await consumers.delete_consumer(conn, consumer, schema=state.schema)
    return _deleted(consumer.id)
