"""What the routes share: the pool, the schema, the stream service and the metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool

from upsync.api.auth import bearer_token
from upsync.api.metrics import Metrics
from upsync.ops.tokens import verify_token
from upsync.stream.service import StreamService

__all__ = ["ApiState", "Auth", "Conn", "State", "api_state"]

AConn = psycopg.AsyncConnection[Any]


@dataclass
class ApiState:
    """Per-app state, reachable from a request as ``request.app.state.upsync``."""

    pool: AsyncConnectionPool[AConn]
    schema: str
    metrics: Metrics
    service: StreamService
    max_wait_ms: int
    """The longest long poll a client may ask for (``wait_for``)."""


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.upsync
    return state


State = Annotated[ApiState, Depends(api_state)]


async def connection(state: State) -> AsyncIterator[AConn]:
    """A pooled autocommit connection for the duration of the request."""
    async with state.pool.connection() as conn:
        yield conn


Conn = Annotated[AConn, Depends(connection)]


# declared for OpenAPI's "Authorize" button; the header is parsed below for precise messages
_bearer_scheme = HTTPBearer(auto_error=False, description="A token from `upsync token create`")


async def require_token(
    request: Request,
    state: State,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
) -> str:
    """Check the request's bearer token; returns the token's name."""
    token = bearer_token(request.headers.get("authorization"))
    async with state.pool.connection() as conn:
        return await verify_token(conn, token, schema=state.schema)


Auth = Depends(require_token)
