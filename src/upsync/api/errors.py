"""Every API error as one JSON shape: ``{"error": {"type", "message", …}}``.

The mapping from upsync's exception tree to HTTP lives here and nowhere else:

=========================  ======  ======================
exception                  status  ``error.type``
=========================  ======  ======================
Unauthorized               401     ``unauthorized``
NotFound                   404     ``not_found``
InvalidAckToken            400     ``invalid_ack_token``
ConfigurationError         422     ``invalid_request``
RecordError/MappingError   422     ``invalid_request``
other TerminalError        422     ``invalid_request``
ApiError                   its own status and type
TransientError, psycopg    503     ``unavailable``
psycopg DataError          422     ``invalid_request`` (a value Postgres cannot store)
request validation         422     ``invalid_request`` (+ ``fields``)
unknown route / method     404/405 ``not_found`` / ``method_not_allowed``
anything else              500     ``internal_error``
=========================  ======  ======================

Messages pass through :func:`upsync.redact.redact`; tracebacks are logged, never returned.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from upsync import pgerrors
from upsync.errors import (
    Conflict,
    InvalidAckToken,
    NotFound,
    TerminalError,
    TransientError,
    Unauthorized,
    UpsyncError,
)
from upsync.redact import redact

__all__ = ["ApiError", "error_body", "install_error_handlers", "validation_message"]

log = logging.getLogger("upsync.api")

_STATUS_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    503: "unavailable",
}


class ApiError(TerminalError):
    """An error the HTTP layer raises itself, with its status and ``error.type``."""

    def __init__(self, status: int, message: str, *, type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type or _STATUS_TYPES.get(status, "error")


def error_body(type_: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one error shape; ``message`` is redacted."""
    return {"error": {"type": type_, "message": redact(message), **extra}}


def _json(status: int, type_: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(type_, message, **extra), status_code=status, headers=headers)


def status_of(exc: UpsyncError) -> tuple[int, str]:
    """The HTTP status and ``error.type`` of an upsync error."""
    if isinstance(exc, ApiError):
        return exc.status, exc.type
    for cls, status, type_ in (
        (Unauthorized, 401, "unauthorized"),
        (NotFound, 404, "not_found"),
        (InvalidAckToken, 400, "invalid_ack_token"),
        (Conflict, 409, "conflict"),
        (TerminalError, 422, "invalid_request"),
        (TransientError, 503, "unavailable"),
    ):
        if isinstance(exc, cls):
            return status, type_
    return 500, "internal_error"


def _field(loc: Sequence[Any]) -> str:
    # FastAPI locations start with where the value came from; a body field is named plainly
    where, *path = [str(p) for p in loc] or ["body"]
    name = ".".join(path)
    if where == "body":
        return name or "body"
    return f"{name} ({where} parameter)" if name else where


def validation_message(errors: Sequence[Any]) -> tuple[str, list[dict[str, str]]]:
    """FastAPI's error list as one sentence naming each field, and as ``fields``."""
    fields = []
    for err in errors:
        msg = str(err.get("msg", "invalid value"))
        field = _field(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            # FastAPI puts the character offset where a field name goes: name the body
            where = [str(p) for p in err.get("loc", ())][1:]
            at = f" at character {where[0]}" if where else ""
            msg = f"invalid JSON{at} ({err.get('ctx', {}).get('error', 'cannot parse')})"
            field = "body"
        fields.append({"field": field, "message": msg})
    text = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return f"invalid request: {text}", fields


async def _upsync_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UpsyncError)
    status, type_ = status_of(exc)
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, redact(str(exc)))
    return _json(status, type_, str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, fields = validation_message(exc.errors())
    return _json(422, "invalid_request", message, fields=fields)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.url.path} does not support {request.method}"
    else:
        message = str(exc.detail)
    return _json(exc.status_code, _STATUS_TYPES.get(exc.status_code, "error"), message)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # the class name says enough; psycopg messages may quote SQL or connection strings
    log.warning(
        "%s %s: database error %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        redact(str(exc)),
    )
    fault = pgerrors.classify(exc)
    if fault == pgerrors.TRANSIENT:
        return _json(503, "unavailable", "the database is unavailable; retry later")
    if fault == pgerrors.ROW_FAULT:
        # a value from the request that Postgres cannot store (a NUL in text, an out-of-range
        # number): the client's to fix, and nothing was written (the transaction rolled back)
        return _json(
            422,
            "invalid_request",
            f"a value cannot be stored: {type(exc).__name__}; nothing changed",
        )
    return _json(
        500, "internal_error", f"database error ({type(exc).__name__}); see the server log"
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed: %s", request.method, request.url.path, redact(repr(exc)), exc_info=exc)
    return _json(500, "internal_error", "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one JSON shape."""
    app.add_exception_handler(UpsyncError, _upsync_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(psycopg.Error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
