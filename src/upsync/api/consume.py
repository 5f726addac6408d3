"""Consume API: ``next`` (long poll), ``ack``, ``nack``, plus info, dead letters and rewind.

Each endpoint is one call of :class:`upsync.stream.StreamService`. ``next`` returns as soon as
at least one message is available, or after ``wait_for`` ms with an empty ``data``; while it
waits it holds no database connection (the service sleeps on the stream's notifications).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from upsync.api.errors import ApiError
from upsync.api.fastjson import FastJSON
from upsync.api.schemas import MAX_BATCH_SIZE, AckBody, NextBody, ReplayBody, RewindBody
from upsync.api.state import ApiState, Auth, State
from upsync.records import Message
from upsync.stream import tokens
from upsync.stream.cursor import Cursor
from upsync.stream.delivery import count_redelivered
from upsync.stream.models import Batch, Consumer

__all__ = ["router"]

router = APIRouter(prefix="/v1/http-consumers/{id_or_name}", dependencies=[Auth], tags=["consume"])

Json = dict[str, Any]


async def _http_consumer(state: ApiState, id_or_name: str) -> Consumer:
    consumer = await state.service.get_consumer(id_or_name)
    if consumer.kind != "http":
        raise ApiError(
            409,
            f"consumer {id_or_name!r} is a managed {consumer.kind!r} consumer: "
            "upsync delivers its messages itself, they cannot be pulled over HTTP",
        )
    return consumer


async def _count_redelivered(
    state: ApiState, consumer: Consumer, messages: tuple[Message, ...]
) -> int:
    # a read of the library's table until claims report attempts (see the API docs' notes)
    ids = [tokens.decode(m.ack_token, consumer.id).delivery_id for m in messages]
    async with state.pool.connection() as conn:
        return await count_redelivered(conn, consumer, ids, schema=state.schema)


async def _disconnected(request: Request) -> None:
    # the body is already read, so the next ASGI message is the client going away
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_client_left(request: Request, work: Awaitable[Batch]) -> Batch | None:
    """``work``'s result, or ``None`` if the client disconnected first (``work`` is then
    cancelled: an abandoned long poll must not hold the server, e.g. its graceful shutdown).
    Messages a cancelled claim took are not lost: their ack window expires."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _labels(consumer: Consumer) -> tuple[str, str]:
    return consumer.name, consumer.id


@router.get("/next", response_model=None, response_class=FastJSON)
@router.post("/next", response_model=None, response_class=FastJSON)
async def next_messages(
    request: Request,
    id_or_name: str,
    state: State,
    body: NextBody | None = None,
    batch_size: Annotated[int | None, Query(ge=1, le=MAX_BATCH_SIZE)] = None,
    wait_for: Annotated[int | None, Query(ge=0)] = None,
) -> Json | Response:
    """Claim up to ``batch_size`` messages (default 1), waiting up to ``wait_for`` ms (default 0)
    for the first one. Parameters come from the JSON body or the query string (body wins)."""
    size = (body.batch_size if body else None) or batch_size or 1
    wait_ms = (body.wait_for if body and body.wait_for is not None else wait_for) or 0
    if wait_ms > state.max_wait_ms:
        raise ApiError(422, f"wait_for: at most {state.max_wait_ms} ms, got {wait_ms}")
    consumer = await _http_consumer(state, id_or_name)
    if wait_ms:
        batch = await _unless_client_left(request, state.service.next(consumer, size, wait_ms))
        if batch is None:
            return Response(status_code=499)  # "client closed request": nobody reads this
    else:
        batch = await state.service.next(consumer, size)
    if batch.messages:
        metrics = state.metrics
        metrics.delivered.labels(*_labels(consumer)).inc(len(batch.messages))
        again = await _count_redelivered(state, consumer, batch.messages)
        if again:
            metrics.redelivered.labels(*_labels(consumer)).inc(again)
    return FastJSON(batch.to_dict())


@router.post("/ack", status_code=204, response_class=Response)
async def ack(id_or_name: str, body: AckBody, state: State) -> Response:
    """Acknowledge delivered messages. Any expired or foreign token: 400, nothing acked."""
    consumer = await _http_consumer(state, id_or_name)
    await state.service.ack(consumer, body.ack_tokens)
    state.metrics.acked.labels(*_labels(consumer)).inc(len(body.ack_tokens))
    return Response(status_code=204)


@router.post("/nack", status_code=204, response_class=Response)
async def nack(id_or_name: str, body: AckBody, state: State) -> Response:
    """Make delivered messages available again now. Any invalid token: 400, nothing nacked."""
    consumer = await _http_consumer(state, id_or_name)
    await state.service.nack(consumer, body.ack_tokens)
    state.metrics.nacked.labels(*_labels(consumer)).inc(len(body.ack_tokens))
    return Response(status_code=204)


@router.get("/info")
async def info(id_or_name: str, state: State) -> Json:
    """``{"info": {"num_pending", "num_ack_pending", "num_dead"}}``."""
    return {"info": (await state.service.info(id_or_name)).to_dict()}


@router.get("/dead-letters", response_class=FastJSON)
async def dead_letters(
    id_or_name: str,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FastJSON:
    """Messages that used up ``max_deliver`` attempts, oldest first."""
    items = await state.service.dead_letters(id_or_name, limit=limit)
    return FastJSON({"data": [d.to_dict() for d in items]})


def _record_ids(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    out = []
    for i, value in enumerate(values):
        try:
            out.append(str(uuid.UUID(value)))
        except ValueError:
            raise ApiError(422, f"record_ids[{i}]: {value[:40]!r} is not a record id") from None
    return out


@router.post("/dead-letters/replay")
async def replay(id_or_name: str, state: State, body: ReplayBody | None = None) -> Json:
    """Make dead letters (all, or ``record_ids``) deliverable again: ``{"replayed": n}``."""
    ids = _record_ids(body.record_ids if body else None)
    return {"replayed": await state.service.replay_dead_letters(id_or_name, ids)}


@router.post("/rewind")
async def rewind_consumer(id_or_name: str, state: State, body: RewindBody | None = None) -> Json:
    """Re-deliver every matching record after ``after_idx`` / ``after_cursor`` (default: all
    of them, from the start of the stream): ``{"queued": n}``."""
    after = 0
    if body is not None and body.after_cursor is not None:
        after = Cursor.decode(body.after_cursor).after
    elif body is not None and body.after_idx is not None:
        after = body.after_idx
    return {"queued": await state.service.rewind(id_or_name, after_idx=after)}
