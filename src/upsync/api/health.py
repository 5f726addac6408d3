"""``/healthz`` (is the database reachable?) and Prometheus ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from upsync.api.errors import ApiError
from upsync.api.state import State, require_token

__all__ = ["metrics_router", "router"]

router = APIRouter(tags=["health"])
_HEALTH_TIMEOUT_S = 5.0


@router.get("/healthz")
async def healthz(state: State) -> dict[str, Any]:
    """200 ``{"status": "ok"}`` when a pooled connection answers ``SELECT 1``; otherwise 503."""
    try:
        async with state.pool.connection(timeout=_HEALTH_TIMEOUT_S) as conn:
            await conn.execute("SELECT 1")
    except Exception as e:  # any failure means "not healthy"; say which kind, not the details
        raise ApiError(
            503, f"database unreachable ({type(e).__name__})", type="unavailable"
        ) from None
    return {"status": "ok", "database": "ok"}


async def _metrics(state: State) -> Response:
    async with state.pool.connection() as conn:
        await state.metrics.refresh(conn, schema=state.schema)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def metrics_router(*, auth: bool) -> APIRouter:
    """``GET /metrics``, behind the bearer token only when ``auth`` is true."""
    deps = [Depends(require_token)] if auth else []
    r = APIRouter(tags=["health"], dependencies=deps)

    @r.get("/metrics", response_class=Response)
    async def metrics(request: Request, state: State) -> Response:
        """Prometheus text exposition."""
        return await _metrics(state)

    return r
