"""Records and their wire codec (Sequin's JSON, snake_case).

A :class:`Record` is one version of one upstream object. Its ``id`` is the same for every version
of that object (see :func:`record_id`), and ``updated_idx`` orders the versions: a higher
``updated_idx`` is always newer. A deletion is a record with ``deleted=True`` (a tombstone) and
its own, higher ``updated_idx``.

The decoder accepts a bare record, a list of records, the Consume API envelope
``{"data": [{"ack_token": …, "record": …}]}`` and the Stream API page ``{"records": […]}``.
Unknown fields are kept in :attr:`Record.extra` so encoding gives them back. Every problem
raises :class:`~upsync.errors.RecordError` naming the record (index and id), the field and what
was expected.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

from upsync.errors import RecordError

__all__ = [
    "Message",
    "Record",
    "SyncRef",
    "decode_messages",
    "decode_records",
    "encode_records",
    "record_id",
]

#: Namespace of the UUIDv5 record ids; changing it would change every user's primary keys.
RECORD_ID_NAMESPACE = uuid.UUID("6f0b2d1e-6b7f-5a52-9d1f-2b8c4f0e7a11")

_COLLECTION_RE = re.compile(r"[a-z0-9_]+:[A-Za-z0-9_.\-]+")
_COLLECTION_HINT = "'provider:name' (e.g. 'stripe:subscription')"
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})
_TS_HINT = "an ISO 8601 timestamp or epoch seconds"
_MAX_BIGINT = 2**63 - 1
_KNOWN = frozenset(
    {
        "id",
        "upstream_id",
        "collection_id",
        "data",
        "deleted",
        "inserted_at",
        "provider",
        "stream_id",
        "sync",
        "updated_idx",
        "upstream_created_at",
        "upstream_updated_at",
        # accepted aliases seen in Sequin's docs (see sequin-contract §2.3)
        "sync_id",
        "created_at",
    }
)


def record_id(sync_id: str, collection_id: str, upstream_id: str) -> str:
    """The stable id of an upstream object: the same for every version, unique across syncs."""
    return str(uuid.uuid5(RECORD_ID_NAMESPACE, f"{sync_id}\x1f{collection_id}\x1f{upstream_id}"))


class RecordIds:
    """:func:`record_id` for many objects of one ``(sync, collection)``, about twice as fast:
    the SHA-1 state of the shared prefix is computed once (``uuid5`` is SHA-1 of namespace +
    name, with the version and variant bits set)."""

    __slots__ = ("_prefix",)

    def __init__(self, sync_id: str, collection_id: str) -> None:
        self._prefix = hashlib.sha1(RECORD_ID_NAMESPACE.bytes, usedforsecurity=False)
        self._prefix.update(f"{sync_id}\x1f{collection_id}\x1f".encode())

    def __call__(self, upstream_id: str) -> str:
        h = self._prefix.copy()
        h.update(upstream_id.encode())
        b = bytearray(h.digest()[:16])
        b[6] = (b[6] & 0x0F) | 0x50
        b[8] = (b[8] & 0x3F) | 0x80
        x = b.hex()
        return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


@dataclass(frozen=True, slots=True)
class SyncRef:
    """The sync a record came from: its id and the user's correlation fields."""

    id: str | None = None
    external_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """One version of one upstream object, as it travels through upsync."""

    id: str
    upstream_id: str
    collection_id: str
    updated_idx: int
    data: Mapping[str, Any] = field(default_factory=dict)
    deleted: bool = False
    provider: str = ""
    stream_id: str | None = None
    sync: SyncRef = field(default_factory=SyncRef)
    inserted_at: datetime | None = None
    upstream_created_at: datetime | None = None
    upstream_updated_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Fields the record carried that upsync does not know; kept so encoding is lossless."""

    def __post_init__(self) -> None:
        if not self.provider:
            # derived, not guessed: collection ids are "provider:name"
            object.__setattr__(self, "provider", self.collection_id.partition(":")[0])

    @property
    def collection_name(self) -> str:
        """The collection without its provider: ``"subscription"`` for ``"stripe:subscription"``."""
        return self.collection_id.partition(":")[2]

    @classmethod
    def from_dict(cls, obj: Any, *, index: int | None = None) -> Record:
        """Decode one record from its parsed wire JSON; raises :class:`RecordError`."""
        return _decode_record(obj, index)

    def to_dict(self) -> dict[str, Any]:
        """The record's wire JSON (Sequin's snake_case shape), ready for ``json.dumps``."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            id=self.id,
            upstream_id=self.upstream_id,
            collection_id=self.collection_id,
            provider=self.provider,
            stream_id=self.stream_id,
            sync={
                "id": self.sync.id,
                "external_id": self.sync.external_id,
                "metadata": dict(self.sync.metadata),
            },
            data=self.data,
            deleted=self.deleted,
            updated_idx=self.updated_idx,
            inserted_at=_format_ts(self.inserted_at),
            upstream_created_at=_format_ts(self.upstream_created_at),
            upstream_updated_at=_format_ts(self.upstream_updated_at),
        )
        return out


@dataclass(frozen=True, slots=True)
class Message:
    """A record as the Consume API delivers it, with the token that acks or nacks it."""

    ack_token: str
    record: Record


def decode_records(payload: bytes | str | Any) -> list[Record]:
    """Decode records from wire JSON (bytes or str) or already-parsed JSON.

    Accepts a bare record, a list of records, a Consume API envelope (its ack tokens are
    dropped: use :func:`decode_messages` to keep them) or a Stream API ``{"records": […]}`` page.
    """
    return [m if isinstance(m, Record) else m.record for m in _decode(payload, want_tokens=False)]


def decode_messages(payload: bytes | str | Any) -> list[Message]:
    """Decode a Consume API ``/next`` response into messages with their ack tokens."""
    out = []
    for item in _decode(payload, want_tokens=True):
        assert isinstance(item, Message)
        out.append(item)
    return out


def encode_records(records: Iterable[Record]) -> bytes:
    """Encode records as a JSON array of Sequin-shaped record objects."""
    return orjson.dumps([r.to_dict() for r in records])


def _decode(payload: Any, *, want_tokens: bool) -> list[Record | Message]:
    obj = _parse(payload)
    if isinstance(obj, Mapping) and ("data" in obj and "upstream_id" not in obj):
        return _decode_envelope(obj["data"], want_tokens)
    if want_tokens:
        raise RecordError('expected a Consume API envelope {"data": [{"ack_token", "record"}]}')
    if isinstance(obj, Mapping) and "records" in obj:
        obj = obj["records"]
    if isinstance(obj, Mapping):
        return [_decode_record(obj, 0)]
    if isinstance(obj, list):
        return [_decode_record(item, i) for i, item in enumerate(obj)]
    raise RecordError(f"expected a record, a list of records or an envelope, got {_kind(obj)}")


def _decode_envelope(items: Any, want_tokens: bool) -> list[Record | Message]:
    if not isinstance(items, list):
        raise RecordError(f"envelope 'data' must be a list, got {_kind(items)}", field="data")
    out: list[Record | Message] = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "record" not in item:
            raise RecordError("expected {'ack_token': …, 'record': {…}}", index=i)
        record = _decode_record(item["record"], i)
        if not want_tokens:
            out.append(record)
            continue
        token = item.get("ack_token")
        if not isinstance(token, str) or not token:
            raise RecordError("expected a non-empty string", index=i, field="ack_token")
        out.append(Message(token, record))
    return out


def _parse(payload: Any) -> Any:
    if isinstance(payload, bytes | bytearray | memoryview | str):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            raise RecordError(f"invalid JSON: {e}") from None
    return payload


def _decode_record(obj: Any, index: int | None) -> Record:
    if not _is_object(obj):
        raise RecordError(f"expected a JSON object, got {_kind(obj)}", index=index)
    rid = obj.get("id")
    if not isinstance(rid, str) or not rid:
        raise RecordError(_expected("a non-empty string", obj, "id"), index=index, field="id")

    def fail(name: str, reason: str) -> RecordError:
        return RecordError(reason, index=index, record_id=rid, field=name)

    collection_id = obj.get("collection_id")
    if not isinstance(collection_id, str) or not _COLLECTION_RE.fullmatch(collection_id):
        raise fail("collection_id", _expected(_COLLECTION_HINT, obj, "collection_id"))
    upstream_id = obj.get("upstream_id")
    if not isinstance(upstream_id, str) or not upstream_id:
        raise fail("upstream_id", _expected("a non-empty string", obj, "upstream_id"))
    updated_idx = obj.get("updated_idx")
    if type(updated_idx) is not int or not 0 <= updated_idx <= _MAX_BIGINT:
        raise fail("updated_idx", _expected("an integer from 0 to 2^63-1", obj, "updated_idx"))
    deleted = obj.get("deleted", False)
    if type(deleted) is not bool:
        raise fail("deleted", _expected("true or false", obj, "deleted"))
    data = obj.get("data")
    if data is None:
        if not deleted and "data" not in obj:
            raise fail("data", "missing; expected the upstream object")
        data = {}
    elif not _is_object(data):
        raise fail("data", _expected("a JSON object", obj, "data"))
    provider = obj.get("provider") or collection_id.partition(":")[0]
    if provider != collection_id.partition(":")[0]:
        raise fail("provider", f"{provider!r} does not match collection_id {collection_id!r}")
    stream_id = obj.get("stream_id")
    if stream_id is not None and not isinstance(stream_id, str):
        raise fail("stream_id", _expected("a string", obj, "stream_id"))
    return Record(
        id=rid,
        upstream_id=upstream_id,
        collection_id=collection_id,
        updated_idx=updated_idx,
        data=data,
        deleted=deleted,
        provider=provider,
        stream_id=stream_id,
        sync=_decode_sync(obj, fail),
        inserted_at=_ts(obj, "inserted_at", fail, alias="created_at"),
        upstream_created_at=_ts(obj, "upstream_created_at", fail),
        upstream_updated_at=_ts(obj, "upstream_updated_at", fail),
        extra=_extra(obj),
    )


def _decode_sync(obj: Mapping[str, Any], fail: Any) -> SyncRef:
    sync = obj.get("sync")
    if sync is None:
        flat = obj.get("sync_id")
        if flat is not None and not isinstance(flat, str):
            raise fail("sync_id", _expected("a string", obj, "sync_id"))
        return SyncRef(id=flat)
    if not _is_object(sync):
        raise fail("sync", _expected("an object {id, external_id, metadata}", obj, "sync"))
    for name in ("id", "external_id"):
        if sync.get(name) is not None and not isinstance(sync[name], str):
            raise fail(f"sync.{name}", _expected("a string", sync, name))
    meta = sync.get("metadata")
    if meta is None:
        meta = {}
    elif not _is_object(meta):
        raise fail("sync.metadata", _expected("a JSON object", sync, "metadata"))
    return SyncRef(id=sync.get("id"), external_id=sync.get("external_id"), metadata=meta)


def _ts(
    obj: Mapping[str, Any], name: str, fail: Any, *, alias: str | None = None
) -> datetime | None:
    value = obj.get(name)
    if value is None and alias is not None:
        value = obj.get(alias)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise fail(name, _expected(_TS_HINT, {name: value}, name)) from None
        # naive timestamps (e.g. Sequin's "2023-12-15 01:29:29") are UTC by the contract
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if type(value) in (int, float):
        return datetime.fromtimestamp(value, UTC)  # Stripe-style epoch seconds
    raise fail(name, _expected(_TS_HINT, {name: value}, name))


def _extra(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    if _KNOWN.issuperset(obj):  # the common case; far cheaper than a keys-view comparison
        return _NO_EXTRA
    return {k: v for k, v in obj.items() if k not in _KNOWN}


def _is_object(value: Any) -> bool:
    # parsed JSON objects are dicts; the ABC check is only for callers passing other mappings
    return type(value) is dict or isinstance(value, Mapping)


def _format_ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _expected(what: str, obj: Mapping[str, Any], name: str) -> str:
    if name not in obj:
        return f"missing; expected {what}"
    got = obj[name]
    return f"expected {what}, got {_kind(got)} {_short(got)}"


def _kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
