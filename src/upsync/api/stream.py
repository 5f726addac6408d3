"""Stream APIs: cursor-paged ``GET /v1/records`` and ``GET /v1/events`` (no consumer state)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from upsync.api.fastjson import FastJSON
from upsync.api.state import Auth, State
from upsync.stream.pages import MAX_LIMIT

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Auth], tags=["stream"])


@dataclass
class PageQuery:
    """The query string both pages take (the filters are exact matches; omitted: any)."""

    after_cursor: str | None = None
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100
    stream_id: str | None = None
    sync_id: str | None = None
    provider: str | None = None
    collection_id: str | None = None


Page = Annotated[PageQuery, Depends()]


@router.get("/records", response_class=FastJSON)
async def records(state: State, query: Page) -> FastJSON:
    """Records at their latest version, in ``updated_idx`` order: ``{"records", "cursor"}``.

    Pass the returned ``cursor`` as ``after_cursor`` for the next page; an empty ``records``
    means you are at the end (for now).
    """
    return FastJSON((await state.service.records(**asdict(query))).to_dict())


@router.get("/events", response_class=FastJSON)
async def events(state: State, query: Page) -> FastJSON:
    """Change events (``created`` / ``updated`` / ``deleted``), oldest first:
    ``{"events", "cursor"}``."""
    return FastJSON((await state.service.events(**asdict(query))).to_dict())
