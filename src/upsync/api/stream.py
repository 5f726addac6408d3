"""Stream APIs: cursor-paged ``GET /v1/records`` and ``GET /v1/events`` (no consumer state)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from upsync.api.fastjson import FastJSON
from upsync.api.state import Auth, State
from upsync.stream.pages import MAX_LIMIT

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Auth], tags=["stream"])

Json = dict[str, Any]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


@router.get("/records", response_class=FastJSON)
async def records(
    state: State,
    after_cursor: str | None = None,
    limit: Limit = 100,
    stream_id: str | None = None,
    sync_id: str | None = None,
    provider: str | None = None,
    collection_id: str | None = None,
) -> FastJSON:
    """Records at their latest version, in ``updated_idx`` order: ``{"records", "cursor"}``.

    Pass the returned ``cursor`` as ``after_cursor`` for the next page; an empty ``records``
    means you are at the end (for now).
    """
    page = await state.service.records(
        after_cursor=after_cursor,
        limit=limit,
        stream_id=stream_id,
        sync_id=sync_id,
        provider=provider,
        collection_id=collection_id,
    )
    return FastJSON(page.to_dict())


@router.get("/events", response_class=FastJSON)
async def events(
    state: State,
    after_cursor: str | None = None,
    limit: Limit = 100,
    stream_id: str | None = None,
    sync_id: str | None = None,
    provider: str | None = None,
    collection_id: str | None = None,
) -> FastJSON:
    """Change events (``created`` / ``updated`` / ``deleted``), oldest first:
    ``{"events", "cursor"}``."""
    page = await state.service.events(
        after_cursor=after_cursor,
        limit=limit,
        stream_id=stream_id,
        sync_id=sync_id,
        provider=provider,
        collection_id=collection_id,
    )
    return FastJSON(page.to_dict())
