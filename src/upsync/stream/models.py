"""The values the stream library takes and returns (plain frozen dataclasses).

Each maps 1:1 onto a JSON object of Sequin's HTTP API; ``to_dict`` gives that shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from upsync.errors import ConfigurationError
from upsync.records import Message, Record

DeliverPolicy = Literal["all", "new", "last", "1h"]
DELIVER_POLICIES: tuple[str, ...] = ("all", "new", "last", "1h")
MASK = "****"


#: The sync metadata key naming the credential(s) that hold its webhook signing secret(s).
WEBHOOK_CREDENTIAL_KEY = "webhook_credential_id"


def webhook_credential_ids(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """The ids under ``metadata["webhook_credential_id"]``: one id or a list (secret roll)."""
    value = metadata.get(WEBHOOK_CREDENTIAL_KEY)
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str) and v)
    return ()


@dataclass(frozen=True, slots=True)
class ConsumerDefaults:
    """The one set of consumer defaults, whatever door creates the consumer (API, CLI, Python).

    ``max_deliver`` is 10, not Sequin's -1 (unlimited): a record that can never be processed
    (a row Postgres refuses, a handler bug) would otherwise be redelivered forever, holding an
    ``max_ack_pending`` slot and hiding in ``num_pending``; after 10 attempts it becomes a
    visible, replayable dead letter instead. Pass ``max_deliver=-1`` to get Sequin's behaviour.
    """

    deliver_policy: str = "all"
    ack_wait_ms: int = 30_000
    max_deliver: int = 10
    max_ack_pending: int = 1000


CONSUMER_DEFAULTS = ConsumerDefaults()


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class Stream:
    """A compacted queue of records; syncs write into it and consumers read it."""

    id: str
    name: str
    metadata: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "metadata": dict(self.metadata),
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Credential:
    """An API key or token. ``secret`` is never held here: read it with ``reveal_secret``."""

    id: str
    provider: str
    kind: str
    name: str | None
    test: bool
    metadata: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "properties": {"kind": self.kind, "name": self.name, "secret": MASK, "test": self.test},
            "metadata": dict(self.metadata),
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Sync:
    """One connection to one API account, writing into one stream."""

    id: str
    stream_id: str
    provider: str
    name: str
    collection_ids: tuple[str, ...]
    external_id: str | None
    metadata: Mapping[str, Any]
    status: str
    cursors: Mapping[str, Any]
    initial_backfill_completed_at: datetime | None
    rate_limit: Mapping[str, Any] | None
    credential_id: str | None
    max_age_days: int | None
    created_at: datetime
    updated_at: datetime
    #: the engine's last word on this sync (state, last error), written by the process that
    #: runs it; ``None`` until an engine ran it (see :mod:`upsync.ops.health`)
    health: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stream_id": self.stream_id,
            "provider": self.provider,
            "name": self.name,
            "collection_ids": list(self.collection_ids),
            "external_id": self.external_id,
            "metadata": dict(self.metadata),
            "status": self.status,
            "initial_backfill_completed_at": _ts(self.initial_backfill_completed_at),
            "rate_limit": None if self.rate_limit is None else dict(self.rate_limit),
            "credential_id": self.credential_id,
            "max_age_days": self.max_age_days,
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at),
        }


FILTER_KEYS = ("provider", "sync_id", "collection_id")


@dataclass(frozen=True, slots=True)
class Filters:
    """Which records a consumer receives: every key must match; ``"*"`` matches anything."""

    provider: str = "*"
    sync_id: str = "*"
    collection_id: str = "*"

    @classmethod
    def parse(cls, value: Mapping[str, Any] | Filters | None) -> Filters:
        """From Sequin's ``filters`` object; unknown keys or non-strings: ConfigurationError."""
        if value is None:
            return cls()
        if isinstance(value, Filters):
            return value
        unknown = sorted(set(value) - set(FILTER_KEYS))
        if unknown:
            raise ConfigurationError(
                f"filters: unknown key(s) {unknown}; expected some of {list(FILTER_KEYS)}"
            )
        for key, item in value.items():
            if not isinstance(item, str) or not item:
                raise ConfigurationError(f"filters.{key}: expected a non-empty string or '*'")
        return cls(**value)

    def matches(self, provider: str, sync_id: str, collection_id: str) -> bool:
        """The same rule the SQL applies, for pure callers."""
        return all(
            want in ("*", got)
            for want, got in (
                (self.provider, provider),
                (self.sync_id, sync_id),
                (self.collection_id, collection_id),
            )
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "provider": self.provider,
            "sync_id": self.sync_id,
            "collection_id": self.collection_id,
        }


@dataclass(frozen=True, slots=True)
class Consumer:
    """A named, filtered view of a stream with at-least-once delivery (Sequin's settings)."""

    id: str
    stream_id: str
    name: str
    kind: str
    filters: Filters
    deliver_policy: str
    ack_wait_ms: int
    max_deliver: int
    max_ack_pending: int
    metadata: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "stream_id": self.stream_id,
            "name": self.name,
            "kind": self.kind,
            "filters": self.filters.to_dict(),
            "deliver_policy": self.deliver_policy,
            "ack_wait_ms": self.ack_wait_ms,
            "max_deliver": self.max_deliver,
            "max_ack_pending": self.max_ack_pending,
            "metadata": dict(self.metadata),
            "created_at": _ts(self.created_at),
            "updated_at": _ts(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    """Counters of one consumer. ``num_pending``: deliverable now (new, nacked or past their
    ack deadline); ``num_ack_pending``: held by workers within their ack window; ``num_dead``:
    dead letters."""

    num_pending: int
    num_ack_pending: int
    num_dead: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "num_pending": self.num_pending,
            "num_ack_pending": self.num_ack_pending,
            "num_dead": self.num_dead,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    """What ``next`` returns: messages (ack token + record) and the consumer's counters."""

    messages: tuple[Message, ...]
    info: ConsumerInfo

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": [
                {"ack_token": m.ack_token, "record": m.record.to_dict()} for m in self.messages
            ],
            "info": self.info.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that exhausted ``max_deliver``; it stays here until replayed or superseded."""

    record: Record
    deliver_count: int
    dead_at: datetime
    reason: str | None = None
    """why its last attempt failed, when the consumer said (managed consumers do)"""

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record.to_dict(),
            "deliver_count": self.deliver_count,
            "dead_at": _ts(self.dead_at),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One change of one record: ``created``, ``updated`` (with ``changes``) or ``deleted``."""

    event_id: str
    seq: int
    event: str
    record_id: str
    stream_id: str
    sync_id: str
    provider: str
    collection_id: str
    upstream_id: str
    data: Mapping[str, Any]
    changes: Mapping[str, Any] | None
    upstream_updated_at: datetime | None
    event_inserted_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event": self.event,
            "record_id": self.record_id,
            "stream_id": self.stream_id,
            "sync_id": self.sync_id,
            "provider": self.provider,
            "collection_id": self.collection_id,
            "upstream_id": self.upstream_id,
            "data": self.data,
            "changes": None if self.changes is None else dict(self.changes),
            "updated_idx": self.seq,
            "upstream_updated_at": _ts(self.upstream_updated_at),
            "event_inserted_at": _ts(self.event_inserted_at),
        }


@dataclass(frozen=True, slots=True)
class RecordPage:
    """A page of ``GET /v1/records``: records in ``updated_idx`` order and the next cursor."""

    records: tuple[Record, ...]
    cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"records": [r.to_dict() for r in self.records], "cursor": self.cursor}


@dataclass(frozen=True, slots=True)
class EventPage:
    """A page of ``GET /v1/events``."""

    events: tuple[Event, ...]
    cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "cursor": self.cursor}


@dataclass(frozen=True, slots=True)
class UpstreamObject:
    """One snapshot of one upstream object, as a sync hands it to :func:`~upsync.stream.write`.

    ``source_version`` orders snapshots of the same object (e.g. the epoch milliseconds at which
    the snapshot was observed upstream, or the creating event's time): see the staleness rule
    in :mod:`upsync.stream.write`. ``deleted=True`` writes a tombstone; its ``data=None`` keeps
    the last known data so consumers see what was deleted.
    """

    upstream_id: str
    data: Mapping[str, Any] | None
    source_version: int
    deleted: bool = False
    upstream_created_at: datetime | None = None
    upstream_updated_at: datetime | None = None


def deletion(upstream_id: str, source_version: int) -> UpstreamObject:
    """A tombstone for ``upstream_id`` observed at ``source_version``."""
    return UpstreamObject(upstream_id, None, source_version, deleted=True)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one :func:`~upsync.stream.write` did, per distinct upstream object."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    stale: int = 0
    max_updated_idx: int | None = None

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.deleted
