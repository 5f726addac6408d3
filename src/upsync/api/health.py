"""``/healthz`` (is the database reachable, is every engine task working?) and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette

from upsync import ops
from upsync.api.errors import ApiError
from upsync.api.state import State, require_token
from upsync.engine.health import TaskBoard

__all__ = ["attach_tasks", "metrics_router", "router"]

router = APIRouter(tags=["health"])
_HEALTH_TIMEOUT_S = 5.0
_TASKS_KEY = "upsync_engine_tasks"


def attach_tasks(app: Starlette, tasks: TaskBoard) -> None:
    """Let ``/healthz`` report the engine's tasks that are retrying or stopped."""
    setattr(app.state, _TASKS_KEY, tasks)


@router.get("/healthz")
async def healthz(request: Request, state: State) -> dict[str, Any]:
    """503 when the database does not answer ``SELECT 1``; else 200 with each troubled task.

    Served by the engine, ``status`` is ``ok``, or ``degraded`` when an engine task (a sync,
    a managed consumer, a supervisor) has stopped on an error that retrying cannot fix;
    ``tasks`` lists the tasks that are retrying or stopped, with their last error (redacted).
    A stopped task needs a person, not a restart of the process, so this stays 200. The API
    served alone answers ``{"status": "ok", "database": "ok"}``.
    """
    try:
        async with state.pool.connection(timeout=_HEALTH_TIMEOUT_S) as conn:
            await ops.status.ping(conn)
    except Exception as e:  # any failure means "not healthy"; say which kind, not the details
        raise ApiError(
            503, f"database unreachable ({type(e).__name__})", type="unavailable"
        ) from None
    board: TaskBoard | None = getattr(request.app.state, _TASKS_KEY, None)
    if board is None:
        return {"status": "ok", "database": "ok"}  # the API alone: no engine tasks here
    troubled = board.troubled()
    status = "degraded" if any(t.state == "stopped" for t in troubled) else "ok"
    return {"status": status, "database": "ok", "tasks": [t.to_dict() for t in troubled]}


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
