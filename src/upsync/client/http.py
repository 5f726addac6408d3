"""The two clients, :class:`Client` (blocking) and :class:`AsyncClient`, generated from the
request builders of :mod:`upsync.client._calls`; HTTP errors become upsync errors."""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import (
    Callable,
    Coroutine,
    Generator,
)
from typing import Any, Concatenate

import httpx

from upsync.client._calls import _POLL_SLACK_S, P, T, _Call, _calls
from upsync.errors import (
    ApiUnavailable,
    ConfigurationError,
    InvalidAckToken,
    NotFound,
    Unauthorized,
    UpsyncError,
)
from upsync.redact import redact

# -- errors ----------------------------------------------------------------------------------


def _error_of(call: _Call[Any], response: httpx.Response) -> UpsyncError:
    """The upsync error for a non-2xx answer (pure: testable without a server)."""
    status = response.status_code
    kind, message = "", response.text[:300]
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        error = response.json()["error"]
        kind, message = str(error.get("type", "")), str(error["message"])
    text = redact(f"{call.method} {call.path}: {status} {message}")
    if status == 401:
        return Unauthorized(text)
    if status == 404:
        return NotFound(text)
    if kind == "invalid_ack_token":
        return InvalidAckToken(text)
    if status == 429 or status >= 500:
        return ApiUnavailable(text, status=status)
    return ConfigurationError(text)


def _transport_error(call: _Call[Any], exc: httpx.TransportError) -> ApiUnavailable:
    return ApiUnavailable(redact(f"{call.method} {call.path}: {type(exc).__name__}: {exc}"))


class _Bearer(httpx.Auth):
    """Adds the bearer token at send time; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ConfigurationError("token: expected a non-empty bearer token")
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "_Bearer('****')"


def _request_kwargs(call: _Call[Any], timeout: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"params": call.params}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.wait_s:
        kwargs["timeout"] = httpx.Timeout(timeout, read=timeout + call.wait_s + _POLL_SLACK_S)
    return kwargs


# -- the clients -----------------------------------------------------------------------------


def _signature(build: Callable[..., _Call[Any]]) -> inspect.Signature:
    """The method's real signature: ``self``, the builder's parameters, and what the request
    answers (``T`` of the builder's ``_Call[T]``), with annotations as types, not strings."""
    sig = inspect.signature(build, eval_str=True)
    (answer,) = typing.get_args(sig.return_annotation)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    return sig.replace(parameters=[this, *sig.parameters.values()], return_annotation=answer)


def _method(method: Callable[..., Any], build: Callable[..., _Call[Any]]) -> None:
    method.__name__ = method.__qualname__ = build.__name__
    method.__doc__ = build.__doc__
    # what help(), IDEs and inspect.signature show, instead of (*args, **kwargs)
    vars(method)["__signature__"] = _signature(build)


def _sync(build: Callable[P, _Call[T]]) -> Callable[Concatenate[Client, P], T]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(*args, **kwargs))

    _method(method, build)
    return method


def _async(
    build: Callable[P, _Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(*args, **kwargs))

    _method(method, build)
    return method


def _answer(call: _Call[T], response: httpx.Response) -> T:
    if response.is_error:
        raise _error_of(call, response)
    return call.parse(response)


class Client:
    """Blocking client of upsync's HTTP API.

    Args:
        base_url: e.g. ``"http://127.0.0.1:7376"``.
        token: a bearer token from ``upsync token create`` (or :func:`upsync.api.create_token`).
        timeout: seconds for connecting and for ordinary requests; long polls get their
            ``wait_for`` on top.
        transport: an ``httpx`` transport (e.g. ``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=base_url, auth=_Bearer(token), timeout=timeout, transport=transport
        )

    def _run(self, call: _Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, **_request_kwargs(call, self._timeout)
            )
        except httpx.TransportError as e:
            raise _transport_error(call, e) from None
        return _answer(call, response)

    def close(self) -> None:
        """Close the connections (``with Client(...) as client:`` does it on exit)."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({redact(self.base_url)!r}, token='****')"

    next = _sync(_calls.next)
    ack = _sync(_calls.ack)
    nack = _sync(_calls.nack)
    info = _sync(_calls.info)
    dead_letters = _sync(_calls.dead_letters)
    replay_dead_letters = _sync(_calls.replay_dead_letters)
    rewind = _sync(_calls.rewind)
    create_consumer = _sync(_calls.create_consumer)
    list_consumers = _sync(_calls.list_consumers)
    get_consumer = _sync(_calls.get_consumer)
    update_consumer = _sync(_calls.update_consumer)
    delete_consumer = _sync(_calls.delete_consumer)
    create_stream = _sync(_calls.create_stream)
    list_streams = _sync(_calls.list_streams)
    get_stream = _sync(_calls.get_stream)
    delete_stream = _sync(_calls.delete_stream)
    create_credential = _sync(_calls.create_credential)
    list_credentials = _sync(_calls.list_credentials)
    get_credential = _sync(_calls.get_credential)
    delete_credential = _sync(_calls.delete_credential)
    create_sync = _sync(_calls.create_sync)
    list_syncs = _sync(_calls.list_syncs)
    get_sync = _sync(_calls.get_sync)
    update_sync = _sync(_calls.update_sync)
    delete_sync = _sync(_calls.delete_sync)
    records = _sync(_calls.records)
    events = _sync(_calls.events)
    healthz = _sync(_calls.healthz)


class AsyncClient:
    """:class:`Client` for asyncio: the same methods, awaited."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url, auth=_Bearer(token), timeout=timeout, transport=transport
        )

    async def _run(self, call: _Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, **_request_kwargs(call, self._timeout)
            )
        except httpx.TransportError as e:
            raise _transport_error(call, e) from None
        return _answer(call, response)

    async def aclose(self) -> None:
        """Close the connections (``async with AsyncClient(...) as client:`` does it on exit)."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({redact(self.base_url)!r}, token='****')"

    next = _async(_calls.next)
    ack = _async(_calls.ack)
    nack = _async(_calls.nack)
    info = _async(_calls.info)
    dead_letters = _async(_calls.dead_letters)
    replay_dead_letters = _async(_calls.replay_dead_letters)
    rewind = _async(_calls.rewind)
    create_consumer = _async(_calls.create_consumer)
    list_consumers = _async(_calls.list_consumers)
    get_consumer = _async(_calls.get_consumer)
    update_consumer = _async(_calls.update_consumer)
    delete_consumer = _async(_calls.delete_consumer)
    create_stream = _async(_calls.create_stream)
    list_streams = _async(_calls.list_streams)
    get_stream = _async(_calls.get_stream)
    delete_stream = _async(_calls.delete_stream)
    create_credential = _async(_calls.create_credential)
    list_credentials = _async(_calls.list_credentials)
    get_credential = _async(_calls.get_credential)
    delete_credential = _async(_calls.delete_credential)
    create_sync = _async(_calls.create_sync)
    list_syncs = _async(_calls.list_syncs)
    get_sync = _async(_calls.get_sync)
    update_sync = _async(_calls.update_sync)
    delete_sync = _async(_calls.delete_sync)
    records = _async(_calls.records)
    events = _async(_calls.events)
    healthz = _async(_calls.healthz)
