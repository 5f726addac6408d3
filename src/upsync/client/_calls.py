"""One request builder per endpoint of upsync's HTTP API, and the parsers of its answers.

Pure: a builder returns a :class:`_Call` (method, path, parse, body); :mod:`upsync.client.http`
sends it, blocking or async, so the two clients cannot drift apart.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import (
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar

import httpx

from upsync.records import decode_messages, decode_records
from upsync.stream.models import Batch, ConsumerInfo, RecordPage

P = ParamSpec("P")
T = TypeVar("T")
Json = dict[str, Any]

#: Extra seconds a long poll may take on the wire beyond its ``wait_for``.
_POLL_SLACK_S = 10.0


# -- one request builder per endpoint ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    wait_s: float = 0.0
    """How long the server may legitimately hold the request (long poll)."""


def _json(response: httpx.Response) -> Json:
    body: Json = response.json()
    return body


def _items(response: httpx.Response) -> list[Json]:
    items: list[Json] = response.json()["data"]
    return items


def _nothing(response: httpx.Response) -> None:
    return None


def _batch(response: httpx.Response) -> Batch:
    body = response.json()
    info = body.get("info") or {}
    return Batch(
        tuple(decode_messages(body)),
        ConsumerInfo(
            int(info.get("num_pending", 0)),
            int(info.get("num_ack_pending", 0)),
            int(info.get("num_dead", 0)),
        ),
    )


def _record_page(response: httpx.Response) -> RecordPage:
    body = response.json()
    return RecordPage(tuple(decode_records(body["records"])), body.get("cursor"))


def _info(response: httpx.Response) -> ConsumerInfo:
    info = response.json()["info"]
    return ConsumerInfo(info["num_pending"], info["num_ack_pending"], info.get("num_dead", 0))


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _consumer(consumer: str, *rest: str) -> str:
    return "/".join(["/v1/http-consumers", _quote(consumer), *rest])


def _query(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _metadata(metadata: Mapping[str, Any] | None) -> str | None:
    return None if metadata is None else json.dumps(dict(metadata), separators=(",", ":"))


class _calls:
    @staticmethod
    def next(consumer: str, *, batch_size: int = 1, wait_for_ms: int = 0) -> _Call[Batch]:
        """Claim up to ``batch_size`` messages, waiting up to ``wait_for_ms`` for the first."""
        body = {"batch_size": batch_size, "wait_for": wait_for_ms}
        return _Call(
            "POST", _consumer(consumer, "next"), _batch, json=body, wait_s=wait_for_ms / 1000
        )

    @staticmethod
    def ack(consumer: str, ack_tokens: Sequence[str]) -> _Call[None]:
        """Acknowledge messages. Raises :class:`InvalidAckToken` (nothing acked) if any token
        is expired, already used or from another consumer."""
        return _Call(
            "POST", _consumer(consumer, "ack"), _nothing, json={"ack_tokens": list(ack_tokens)}
        )

    @staticmethod
    def nack(consumer: str, ack_tokens: Sequence[str]) -> _Call[None]:
        """Make messages available for redelivery now."""
        return _Call(
            "POST", _consumer(consumer, "nack"), _nothing, json={"ack_tokens": list(ack_tokens)}
        )

    @staticmethod
    def info(consumer: str) -> _Call[ConsumerInfo]:
        """The consumer's pending / ack-pending / dead counts."""
        return _Call("GET", _consumer(consumer, "info"), _info)

    @staticmethod
    def dead_letters(consumer: str, *, limit: int = 100) -> _Call[list[Json]]:
        """Dead letters, oldest first: ``{"record", "deliver_count", "dead_at"}`` each."""
        return _Call("GET", _consumer(consumer, "dead-letters"), _items, params={"limit": limit})

    @staticmethod
    def replay_dead_letters(consumer: str, record_ids: Sequence[str] | None = None) -> _Call[int]:
        """Make dead letters (all, or those of ``record_ids``) deliverable again; how many."""
        body = None if record_ids is None else {"record_ids": list(record_ids)}
        path = _consumer(consumer, "dead-letters", "replay")
        return _Call("POST", path, lambda r: int(r.json()["replayed"]), json=body)

    @staticmethod
    def rewind(
        consumer: str, *, after_idx: int | None = None, after_cursor: str | None = None
    ) -> _Call[int]:
        """Re-deliver records after a position (default: from the start); how many queued."""
        body = _query(after_idx=after_idx, after_cursor=after_cursor)
        return _Call(
            "POST", _consumer(consumer, "rewind"), lambda r: int(r.json()["queued"]), json=body
        )

    @staticmethod
    def create_consumer(stream_id: str, name: str, **settings: Any) -> _Call[Json]:
        """Create an HTTP consumer (``filters``, ``deliver_policy``, ``ack_wait_ms``, …)."""
        body = {"stream_id": stream_id, "name": name, **settings}
        return _Call("POST", "/v1/http-consumers", _json, json=body)

    @staticmethod
    def list_consumers(
        *, stream_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> _Call[list[Json]]:
        params = _query(stream_id=stream_id, metadata=_metadata(metadata))
        return _Call("GET", "/v1/http-consumers", _items, params=params)

    @staticmethod
    def get_consumer(consumer: str) -> _Call[Json]:
        return _Call("GET", _consumer(consumer), _json)

    @staticmethod
    def update_consumer(consumer: str, **changes: Any) -> _Call[Json]:
        """Change the given settings only."""
        return _Call("PATCH", _consumer(consumer), _json, json=changes)

    @staticmethod
    def delete_consumer(consumer: str) -> _Call[Json]:
        return _Call("DELETE", _consumer(consumer), _json)

    @staticmethod
    def create_stream(name: str, *, metadata: Mapping[str, Any] | None = None) -> _Call[Json]:
        return _Call(
            "POST", "/v1/streams", _json, json={"name": name, "metadata": dict(metadata or {})}
        )

    @staticmethod
    def list_streams() -> _Call[list[Json]]:
        return _Call("GET", "/v1/streams", _items)

    @staticmethod
    def get_stream(id_or_name: str) -> _Call[Json]:
        return _Call("GET", "/v1/streams/" + _quote(id_or_name), _json)

    @staticmethod
    def delete_stream(stream_id: str) -> _Call[Json]:
        return _Call("DELETE", "/v1/streams/" + _quote(stream_id), _json)

    @staticmethod
    def create_credential(
        kind: str,
        secret: str,
        *,
        provider: str | None = None,
        name: str | None = None,
        test: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> _Call[Json]:
        """Store an API key; the response (and every later one) shows it as ``"****"``."""
        props = {"kind": kind, "secret": secret, "name": name, "test": test}
        body = {"properties": props, "metadata": dict(metadata or {}), **_query(provider=provider)}
        return _Call("POST", "/v1/credentials", _json, json=body)

    @staticmethod
    def list_credentials() -> _Call[list[Json]]:
        return _Call("GET", "/v1/credentials", _items)

    @staticmethod
    def get_credential(credential_id: str) -> _Call[Json]:
        return _Call("GET", "/v1/credentials/" + _quote(credential_id), _json)

    @staticmethod
    def delete_credential(credential_id: str) -> _Call[Json]:
        return _Call("DELETE", "/v1/credentials/" + _quote(credential_id), _json)

    @staticmethod
    def create_sync(**fields: Any) -> _Call[Json]:
        """Create a sync: ``provider``, ``stream_id``, ``name``, ``collection_ids`` and
        ``credential`` or ``credential_id`` (see the Management API)."""
        return _Call("POST", "/v1/syncs", _json, json=fields)

    @staticmethod
    def list_syncs(
        *,
        provider: str | None = None,
        name: str | None = None,
        stream_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> _Call[list[Json]]:
        params = _query(
            provider=provider, name=name, stream_id=stream_id, metadata=_metadata(metadata)
        )
        return _Call("GET", "/v1/syncs", _items, params=params)

    @staticmethod
    def get_sync(sync_id: str) -> _Call[Json]:
        return _Call("GET", "/v1/syncs/" + _quote(sync_id), _json)

    @staticmethod
    def update_sync(sync_id: str, **changes: Any) -> _Call[Json]:
        return _Call("PATCH", "/v1/syncs/" + _quote(sync_id), _json, json=changes)

    @staticmethod
    def delete_sync(sync_id: str) -> _Call[Json]:
        return _Call("DELETE", "/v1/syncs/" + _quote(sync_id), _json)

    @staticmethod
    def records(
        *,
        after_cursor: str | None = None,
        limit: int = 100,
        stream_id: str | None = None,
        sync_id: str | None = None,
        provider: str | None = None,
        collection_id: str | None = None,
    ) -> _Call[RecordPage]:
        """One page of ``GET /v1/records``; pass its ``cursor`` as ``after_cursor`` next."""
        params = _query(
            after_cursor=after_cursor,
            limit=limit,
            stream_id=stream_id,
            sync_id=sync_id,
            provider=provider,
            collection_id=collection_id,
        )
        return _Call("GET", "/v1/records", _record_page, params=params)

    @staticmethod
    def events(
        *,
        after_cursor: str | None = None,
        limit: int = 100,
        stream_id: str | None = None,
        sync_id: str | None = None,
        provider: str | None = None,
        collection_id: str | None = None,
    ) -> _Call[Json]:
        """One page of ``GET /v1/events``: ``{"events": [...], "cursor": ...}``."""
        params = _query(
            after_cursor=after_cursor,
            limit=limit,
            stream_id=stream_id,
            sync_id=sync_id,
            provider=provider,
            collection_id=collection_id,
        )
        return _Call("GET", "/v1/events", _json, params=params)

    @staticmethod
    def healthz() -> _Call[Json]:
        return _Call("GET", "/healthz", _json)
