"""One request builder per endpoint of upsync's HTTP API, and the parsers of its answers.

Pure: a builder returns a :class:`_Call` (method, path, parse, body); :mod:`upsync.client.http`
sends it, blocking or async, so the two clients cannot drift apart.
"""

from __future__ import annotations

import enum
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


class Unset(enum.Enum):
    """The default of an ``update_*`` argument: leave that setting as it is (``None`` may
    mean something, e.g. ``filters=None`` matches everything)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


Unset.__module__ = "upsync.client"  # where it is public (help() shows the type's path)
UNSET = Unset.UNSET


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
    """The parameters that were given (``None``: leave it to the server)."""
    return {k: v for k, v in params.items() if v is not None}


def _changes(**params: Any) -> dict[str, Any]:
    """The settings to change: those not :data:`UNSET` (``None`` included)."""
    return {k: v for k, v in params.items() if v is not UNSET}


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


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
    def create_consumer(
        stream_id: str,
        name: str,
        *,
        filters: Mapping[str, str] | None = None,
        deliver_policy: str | None = None,
        ack_wait_ms: int | None = None,
        max_deliver: int | None = None,
        max_ack_pending: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> _Call[Json]:
        """Create an HTTP consumer on a stream (its id or name); settings left ``None`` take
        the server's defaults (``deliver_policy="all"``, ``ack_wait_ms=30000``,
        ``max_deliver=-1``: unlimited, ``max_ack_pending=1000``).

        With ``exist_ok=True`` an existing consumer of that name on that stream with the same
        settings is returned instead (so a worker may run its set-up on every start); one with
        other settings raises :class:`~upsync.errors.ConfigurationError` (409) naming them."""
        body = {
            "stream_id": stream_id,
            "name": name,
            **_query(
                filters=_dict(filters),
                deliver_policy=deliver_policy,
                ack_wait_ms=ack_wait_ms,
                max_deliver=max_deliver,
                max_ack_pending=max_ack_pending,
                metadata=_dict(metadata),
            ),
        }
        if exist_ok:
            body["exist_ok"] = True
        return _Call("POST", "/v1/http-consumers", _json, json=body)

    @staticmethod
    def list_consumers(
        *, stream_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> _Call[list[Json]]:
        """HTTP consumers, of one stream or all; ``metadata``: only those whose metadata
        contains these keys and values."""
        params = _query(stream_id=stream_id, metadata=_metadata(metadata))
        return _Call("GET", "/v1/http-consumers", _items, params=params)

    @staticmethod
    def get_consumer(consumer: str) -> _Call[Json]:
        """One HTTP consumer, by id or name."""
        return _Call("GET", _consumer(consumer), _json)

    @staticmethod
    def update_consumer(
        consumer: str,
        *,
        name: str | Unset = UNSET,
        filters: Mapping[str, str] | Unset | None = UNSET,
        ack_wait_ms: int | Unset = UNSET,
        max_deliver: int | Unset = UNSET,
        max_ack_pending: int | Unset = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
    ) -> _Call[Json]:
        """Change the given settings only; ``filters=None`` matches every record.
        (``deliver_policy`` and the stream are fixed at creation.)"""
        changes = _changes(
            name=name,
            filters=filters if filters is UNSET else _dict(filters),
            ack_wait_ms=ack_wait_ms,
            max_deliver=max_deliver,
            max_ack_pending=max_ack_pending,
            metadata=metadata if metadata is UNSET else dict(metadata),
        )
        return _Call("PATCH", _consumer(consumer), _json, json=changes)

    @staticmethod
    def delete_consumer(consumer: str) -> _Call[Json]:
        """Delete an HTTP consumer."""
        return _Call("DELETE", _consumer(consumer), _json)

    @staticmethod
    def create_stream(name: str, *, metadata: Mapping[str, Any] | None = None) -> _Call[Json]:
        """Create a stream."""
        return _Call(
            "POST", "/v1/streams", _json, json={"name": name, "metadata": dict(metadata or {})}
        )

    @staticmethod
    def list_streams() -> _Call[list[Json]]:
        """Every stream."""
        return _Call("GET", "/v1/streams", _items)

    @staticmethod
    def get_stream(id_or_name: str) -> _Call[Json]:
        """One stream, by id or name."""
        return _Call("GET", "/v1/streams/" + _quote(id_or_name), _json)

    @staticmethod
    def delete_stream(stream_id: str) -> _Call[Json]:
        """Delete a stream."""
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
        """Every credential (secrets shown as ``"****"``)."""
        return _Call("GET", "/v1/credentials", _items)

    @staticmethod
    def get_credential(credential_id: str) -> _Call[Json]:
        """One credential (its secret shown as ``"****"``)."""
        return _Call("GET", "/v1/credentials/" + _quote(credential_id), _json)

    @staticmethod
    def delete_credential(credential_id: str) -> _Call[Json]:
        """Delete a credential."""
        return _Call("DELETE", "/v1/credentials/" + _quote(credential_id), _json)

    @staticmethod
    def create_sync(
        *,
        provider: str,
        stream_id: str,
        name: str,
        collection_ids: Sequence[str],
        credential: Mapping[str, Any] | None = None,
        credential_id: str | None = None,
        external_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        rate_limit: Mapping[str, int] | None = None,
        max_age_days: int | None = None,
        status: str | None = None,
    ) -> _Call[Json]:
        """Create a sync writing ``collection_ids`` of ``provider`` into a stream (its id or
        name). Give exactly one of ``credential`` (``{"properties": {"kind", "secret"}}``,
        created with the sync) and ``credential_id``. ``rate_limit``: ``{"allowed_requests",
        "interval", "max_concurrent_requests"}``; ``status``: ``"active"`` (default) or
        ``"disabled"``."""
        body = {
            "provider": provider,
            "stream_id": stream_id,
            "name": name,
            "collection_ids": list(collection_ids),
            **_query(
                credential=_dict(credential),
                credential_id=credential_id,
                external_id=external_id,
                metadata=_dict(metadata),
                rate_limit=_dict(rate_limit),
                max_age_days=max_age_days,
                status=status,
            ),
        }
        return _Call("POST", "/v1/syncs", _json, json=body)

    @staticmethod
    def list_syncs(
        *,
        provider: str | None = None,
        name: str | None = None,
        stream_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> _Call[list[Json]]:
        """Syncs, filtered by whichever of these are given."""
        params = _query(
            provider=provider, name=name, stream_id=stream_id, metadata=_metadata(metadata)
        )
        return _Call("GET", "/v1/syncs", _items, params=params)

    @staticmethod
    def get_sync(sync_id: str) -> _Call[Json]:
        """One sync, with its state and its credential (secret shown as ``"****"``)."""
        return _Call("GET", "/v1/syncs/" + _quote(sync_id), _json)

    @staticmethod
    def update_sync(
        sync_id: str,
        *,
        name: str | Unset = UNSET,
        collection_ids: Sequence[str] | Unset = UNSET,
        credential_id: str | Unset | None = UNSET,
        external_id: str | Unset | None = UNSET,
        metadata: Mapping[str, Any] | Unset = UNSET,
        rate_limit: Mapping[str, int] | Unset | None = UNSET,
        status: str | Unset = UNSET,
    ) -> _Call[Json]:
        """Change the given fields only; ``None`` clears ``credential_id``, ``external_id`` or
        ``rate_limit``."""
        changes = _changes(
            name=name,
            collection_ids=collection_ids if collection_ids is UNSET else list(collection_ids),
            credential_id=credential_id,
            external_id=external_id,
            metadata=metadata if metadata is UNSET else dict(metadata),
            rate_limit=rate_limit if rate_limit is UNSET else _dict(rate_limit),
            status=status,
        )
        return _Call("PATCH", "/v1/syncs/" + _quote(sync_id), _json, json=changes)

    @staticmethod
    def delete_sync(sync_id: str) -> _Call[Json]:
        """Delete a sync."""
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
        """The server's health report (``GET /healthz``)."""
        return _Call("GET", "/healthz", _json)
