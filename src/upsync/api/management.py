"""Management API: streams, credentials, syncs and consumers (create, list, get, update,
delete). Each route parses its input, calls one operation of :mod:`upsync.ops` and renders its
result; the rules live there, so the CLI gets the same outcome. Secrets are stored and only ever
shown as ``"****"``.

Each sync carries a ``health`` block (:mod:`upsync.api.sync_health`): live when this process
runs the sync, else what the database holds, and a ``state`` (:mod:`upsync.ops.health`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query

from upsync import ops
from upsync.api.errors import ApiError
from upsync.api.schemas import (
    ConsumerCreate,
    ConsumerUpdate,
    CredentialCreate,
    StreamCreate,
    SyncCreate,
    SyncUpdate,
    WebhookConsumerCreate,
)
from upsync.api.state import Auth, Conn, State
from upsync.api.sync_health import LiveSyncs, health_block, live_syncs
from upsync.ops.syncs import SyncView

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
    stream = await ops.streams.create_stream(
        conn, body.name, metadata=body.metadata, schema=state.schema
    )
    return stream.to_dict()


@router.get("/streams")
async def list_streams(conn: Conn, state: State) -> Json:
    return _data([s.to_dict() for s in await ops.streams.list_streams(conn, schema=state.schema)])


@router.get("/streams/{id_or_name}")
async def get_stream(id_or_name: str, conn: Conn, state: State) -> Json:
    return (await ops.streams.resolve_stream(conn, id_or_name, schema=state.schema)).to_dict()


@router.delete("/streams/{id_or_name}")
async def delete_stream(id_or_name: str, conn: Conn, state: State) -> Json:
    stream = await ops.streams.delete_stream(conn, id_or_name, schema=state.schema)
    return _deleted(stream.id)


# credentials


@router.post("/credentials")
async def create_credential(body: CredentialCreate, conn: Conn, state: State) -> Json:
    props = body.properties
    new = ops.NewCredential(
        kind=props.kind,
        secret=props.secret,
        provider=body.provider,
        name=props.name,
        test=props.test,
        metadata=body.metadata,
    )
    return (await ops.credentials.create_credential(conn, new, schema=state.schema)).to_dict()


@router.get("/credentials")
async def list_credentials(conn: Conn, state: State) -> Json:
    items = await ops.credentials.list_credentials(conn, schema=state.schema)
    return _data([c.to_dict() for c in items])


@router.get("/credentials/{credential_id}")
async def get_credential(credential_id: str, conn: Conn, state: State) -> Json:
    found = await ops.credentials.get_credential(conn, credential_id, schema=state.schema)
    return found.to_dict()


@router.delete("/credentials/{credential_id}")
async def delete_credential(credential_id: str, conn: Conn, state: State) -> Json:
    credential = await ops.credentials.delete_credential(conn, credential_id, schema=state.schema)
    return _deleted(credential.id)


# syncs


def _sync_json(view: SyncView, live: LiveSyncs | None) -> Json:
    out = view.to_dict()
    running = None if live is None else live.health(view.sync.id)
    interval = 0.5 if live is None else live.poll_interval
    out["health"] = health_block(view.sync, running, poll_interval=interval)
    return out


async def _view(conn: Conn, sync: Any, schema: str, live: LiveSyncs | None) -> Json:
    running = None if live is None else live.health(sync.id)
    view = await ops.syncs.sync_view(conn, sync, live=running, schema=schema)
    return _sync_json(view, live)


def _changed(live: LiveSyncs | None) -> None:
    """Let the engine (if it runs here) start, restart or stop syncs now, not at its next tick."""
    if live is not None:
        live.refresh()


@router.post("/syncs")
async def create_sync(body: SyncCreate, conn: Conn, state: State, live: Live) -> Json:
    cred = body.credential
    new = ops.NewSync(
        provider=body.provider,
        stream=body.stream_id,
        collection_ids=body.collection_ids,
        name=body.name,
        api_key=None if cred is None else cred.properties.secret,
        credential_id=body.credential_id,
        credential_name=None if cred is None else cred.properties.name,
        credential_metadata={} if cred is None else cred.metadata,
        external_id=body.external_id,
        metadata=body.metadata,
        rate_limit=None if body.rate_limit is None else body.rate_limit.model_dump(),
        max_age_days=body.max_age_days,
        status=body.status,
    )
    view = await ops.syncs.create_sync(conn, new, schema=state.schema)
    _changed(live)
    return _sync_json(view, live)


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
    found = await ops.syncs.list_syncs(
        conn,
        stream=stream_id,
        provider=provider,
        name=name,
        metadata=_metadata_filter(metadata),
        schema=state.schema,
    )
    return _data([await _view(conn, s, state.schema, live) for s in found])


@router.get("/syncs/{id_or_name}")
async def get_sync(id_or_name: str, conn: Conn, state: State, live: Live) -> Json:
    sync = await ops.syncs.get_sync(conn, id_or_name, schema=state.schema)
    return await _view(conn, sync, state.schema, live)


@router.put("/syncs/{id_or_name}")
@router.patch("/syncs/{id_or_name}")
async def update_sync(
    id_or_name: str, body: SyncUpdate, conn: Conn, state: State, live: Live
) -> Json:
    """Change the fields given in the body; the others keep their values (PUT and PATCH)."""
    # null clears only what may be empty; for the others it means "unchanged"
    nullable = {"credential_id", "external_id", "rate_limit"}
    changes = {k: v for k, v in body.given().items() if v is not None or k in nullable}
    if "rate_limit" in changes and body.rate_limit is not None:
        changes["rate_limit"] = body.rate_limit.model_dump()
    sync = await ops.syncs.update_sync(conn, id_or_name, changes, schema=state.schema)
    _changed(live)
    return await _view(conn, sync, state.schema, live)


@router.delete("/syncs/{id_or_name}")
async def delete_sync(id_or_name: str, conn: Conn, state: State, live: Live) -> Json:
    """Delete a sync and the credentials created with it; its records stay in the stream."""
    sync = await ops.syncs.delete_sync(conn, id_or_name, schema=state.schema)
    _changed(live)
    return _deleted(sync.id)


# consumers


def _new_consumer(body: ConsumerCreate, kind: str) -> dict[str, Any]:
    return {
        "stream": body.stream_id,
        "name": body.name,
        "kind": kind,
        "filters": body.filters,
        "deliver_policy": body.deliver_policy,
        "ack_wait_ms": body.ack_wait_ms,
        "max_deliver": body.max_deliver,
        "max_ack_pending": body.max_ack_pending,
        "metadata": body.metadata,
    }


@router.post("/http-consumers")
async def create_consumer(body: ConsumerCreate, conn: Conn, state: State) -> Json:
    """Create an HTTP consumer; with ``exist_ok``, return the one of that name if its settings
    are the same (409 naming the differing settings otherwise)."""
    new = ops.NewConsumer(**_new_consumer(body, "http"))
    view = await ops.consumers.create_consumer(
        conn, new, exist_ok=body.exist_ok, schema=state.schema
    )
    return view.consumer.to_dict()


@router.get("/http-consumers")
async def list_consumers(
    conn: Conn, state: State, stream_id: str | None = None, metadata: MetadataQuery = None
) -> Json:
    items = await ops.consumers.list_consumers(
        conn,
        stream=stream_id,
        kind="http",
        metadata=_metadata_filter(metadata),
        schema=state.schema,
    )
    return _data([v.consumer.to_dict() for v in items])


@router.get("/http-consumers/{id_or_name}")
async def get_consumer(id_or_name: str, conn: Conn, state: State) -> Json:
    return (await ops.consumers.get_consumer(conn, id_or_name, schema=state.schema)).to_dict()


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
    updated = await ops.consumers.update_consumer(conn, id_or_name, changes, schema=state.schema)
    return updated.to_dict()


@router.delete("/http-consumers/{id_or_name}")
async def delete_consumer(id_or_name: str, conn: Conn, state: State) -> Json:
    consumer = await ops.consumers.delete_consumer(conn, id_or_name, schema=state.schema)
    return _deleted(consumer.id)


@router.post("/webhook-consumers")
async def create_webhook_consumer(body: WebhookConsumerCreate, conn: Conn, state: State) -> Json:
    """Create a consumer that pushes signed batches to ``url``. The answer carries the signing
    ``secret`` — the only time it is shown (a random one unless given)."""
    new = ops.NewConsumer(**_new_consumer(body, "webhook"), url=body.url, secret=body.secret)
    view = await ops.consumers.create_consumer(
        conn, new, exist_ok=body.exist_ok, schema=state.schema
    )
    return view.to_dict()


@router.get("/consumers")
async def list_all_consumers(
    conn: Conn, state: State, stream_id: str | None = None, kind: str | None = None
) -> Json:
    """Consumers of every kind with their counters (and webhook delivery state)."""
    items = await ops.consumers.list_consumers(
        conn, stream=stream_id, kind=kind, schema=state.schema
    )
    return _data([v.to_dict() for v in items])


@router.get("/consumers/{id_or_name}")
async def get_any_consumer(id_or_name: str, conn: Conn, state: State) -> Json:
    """One consumer of any kind, with its counters (and webhook delivery state)."""
    return (await ops.consumers.show_consumer(conn, id_or_name, schema=state.schema)).to_dict()
