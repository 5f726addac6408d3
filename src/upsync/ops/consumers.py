"""Consumers of every kind: create (or get-or-create), read, change, delete, rewind, dead
letters. One set of defaults (:data:`~upsync.stream.models.CONSUMER_DEFAULTS`) for every door.

Kinds: ``http`` (pulled by workers), ``table`` (typed tables kept by the engine), ``postgres``
(Sequin's single managed table) and ``webhook`` (signed batches pushed to a URL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upsync.engine import webhooks
from upsync.errors import ConfigurationError, Conflict, NotFound
from upsync.ops.limits import check_metadata, check_name
from upsync.ops.providers import check_collection_id, check_provider
from upsync.ops.streams import resolve_stream
from upsync.stream import catalog, consumers, delivery
from upsync.stream.models import CONSUMER_DEFAULTS, Consumer, ConsumerInfo, DeadLetter, Filters
from upsync.stream.tables import DEFAULT_SCHEMA, AConn

__all__ = [
    "KINDS",
    "ConsumerView",
    "NewConsumer",
    "check_filters",
    "consumer_view",
    "create_consumer",
    "dead_letters",
    "delete_consumer",
    "get_consumer",
    "list_consumers",
    "replay",
    "rewind",
    "show_consumer",
    "update_consumer",
]

KINDS: tuple[str, ...] = ("http", "table", "postgres", "webhook")
_SETTINGS = ("deliver_policy", "ack_wait_ms", "max_deliver", "max_ack_pending")


@dataclass(frozen=True)
class NewConsumer:
    """A consumer to create. ``stream`` is an id or a name. A ``webhook`` consumer takes its
    ``url`` (and optionally its signing ``secret``; a random one is made otherwise)."""

    stream: str
    name: str
    kind: str = "http"
    filters: Mapping[str, Any] | None = None
    deliver_policy: str = CONSUMER_DEFAULTS.deliver_policy
    ack_wait_ms: int = CONSUMER_DEFAULTS.ack_wait_ms
    max_deliver: int = CONSUMER_DEFAULTS.max_deliver
    max_ack_pending: int = CONSUMER_DEFAULTS.max_ack_pending
    metadata: Mapping[str, Any] = field(default_factory=dict)
    url: str | None = None
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ConsumerView:
    """A consumer as every door shows it: settings, counters and, for webhooks, delivery state.

    ``secret`` is set only in the answer to the call that created a webhook consumer.
    """

    consumer: Consumer
    info: ConsumerInfo
    webhook: webhooks.WebhookStatus | None = None
    created: bool = True
    secret: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {**self.consumer.to_dict(), **self.info.to_dict()}
        if self.webhook is not None:
            out["webhook"] = self.webhook.to_dict()
        if self.secret is not None:
            out["secret"] = self.secret
        return out

    @property
    def state(self) -> str:
        """``ok``, or the webhook's state (``failing`` …) for a webhook consumer."""
        return "ok" if self.webhook is None else self.webhook.state


async def check_filters(
    conn: AConn, raw: Mapping[str, Any] | None, *, schema: str = DEFAULT_SCHEMA
) -> Filters:
    """Filters whose values exist: a known provider and collection, an existing sync.

    A typo would otherwise match nothing, silently.
    """
    flt = Filters.parse(raw)
    if flt.provider != "*":
        check_provider(flt.provider)
    if flt.collection_id != "*":
        flt = Filters(flt.provider, flt.sync_id, check_collection_id(flt.collection_id))
    if flt.sync_id != "*":
        try:
            sync = await catalog.get_sync(conn, flt.sync_id, schema=schema)
        except NotFound:
            raise ConfigurationError(f"filters.sync_id: no sync {flt.sync_id!r}") from None
        flt = Filters(flt.provider, sync.id, flt.collection_id)
    return flt


def _check_new(new: NewConsumer) -> None:
    check_name(new.name)
    if new.kind not in KINDS:
        raise ConfigurationError(f"kind: expected one of {', '.join(KINDS)}, got {new.kind!r}")
    if (new.url is not None) != (new.kind == "webhook"):
        raise ConfigurationError("url: a webhook consumer needs its url; other kinds take none")
    check_metadata(new.metadata)
    consumers.check_settings(**{k: getattr(new, k) for k in _SETTINGS})


async def create_consumer(
    conn: AConn, new: NewConsumer, *, exist_ok: bool = False, schema: str = DEFAULT_SCHEMA
) -> ConsumerView:
    """Create a consumer. With ``exist_ok``, a consumer of that name on that stream with the
    same settings is returned as it is (``created=False``); different settings raise
    :class:`Conflict` naming them."""
    _check_new(new)
    async with conn.transaction():
        stream = await resolve_stream(conn, new.stream, schema=schema)
        flt = await check_filters(conn, new.filters, schema=schema)
        existing = await _existing(conn, stream.id, new.name, schema)
        if existing is not None:
            if not exist_ok:
                raise Conflict(f"name: a consumer named {new.name!r} already exists on this stream")
            _same_settings(existing, new, flt)
            return await consumer_view(conn, existing, created=False, schema=schema)
        consumer, secret = await _create(conn, stream.id, new, flt, schema)
    view = await consumer_view(conn, consumer, schema=schema)
    return ConsumerView(view.consumer, view.info, view.webhook, True, secret)


async def _create(
    conn: AConn, stream_id: str, new: NewConsumer, flt: Filters, schema: str
) -> tuple[Consumer, str | None]:
    settings = {k: getattr(new, k) for k in _SETTINGS}
    if new.kind == "webhook":
        assert new.url is not None
        return await webhooks.create_webhook_consumer(
            conn,
            stream_id=stream_id,
            name=new.name,
            url=new.url,
            secret=new.secret,
            filters=flt,
            metadata=new.metadata,
            schema=schema,
            **settings,
        )
    consumer = await consumers.create_consumer(
        conn,
        stream_id=stream_id,
        name=new.name,
        filters=flt,
        metadata=new.metadata,
        kind=new.kind,
        schema=schema,
        **settings,
    )
    return consumer, None


async def _existing(conn: AConn, stream_id: str, name: str, schema: str) -> Consumer | None:
    found = await consumers.list_consumers(conn, stream_id=stream_id, schema=schema)
    return next((c for c in found if c.name == name), None)


def _same_settings(existing: Consumer, new: NewConsumer, flt: Filters) -> None:
    wanted: dict[str, Any] = {k: getattr(new, k) for k in _SETTINGS}
    wanted["kind"] = new.kind
    wanted["filters"] = flt
    differ = [k for k, v in wanted.items() if getattr(existing, k) != v]
    if new.kind != "webhook" and dict(existing.metadata) != dict(new.metadata):
        differ.append("metadata")
    if differ:
        raise Conflict(
            f"a consumer named {new.name!r} exists with other settings: {', '.join(differ)} "
            "(update it, or pick another name)"
        )


async def consumer_view(
    conn: AConn, consumer: Consumer, *, created: bool = True, schema: str = DEFAULT_SCHEMA
) -> ConsumerView:
    """``consumer`` with its counters now (and its delivery state when it pushes webhooks)."""
    counts = await delivery.info(conn, consumer, schema=schema)
    hook = None
    if consumer.kind == "webhook":
        hook = await webhooks.webhook_status(conn, consumer, schema=schema)
    return ConsumerView(consumer, counts, hook, created)


async def show_consumer(
    conn: AConn, id_or_name: str, *, schema: str = DEFAULT_SCHEMA
) -> ConsumerView:
    """The consumer with that id or name, with its counters (and webhook delivery state)."""
    consumer = await get_consumer(conn, id_or_name, schema=schema)
    return await consumer_view(conn, consumer, schema=schema)


async def get_consumer(
    conn: AConn, id_or_name: str, *, stream: str | None = None, schema: str = DEFAULT_SCHEMA
) -> Consumer:
    """The consumer with that id or name (on ``stream``, an id or name, when names repeat)."""
    stream_id = None if stream is None else (await resolve_stream(conn, stream, schema=schema)).id
    return await consumers.get_consumer(conn, id_or_name, stream_id=stream_id, schema=schema)


async def list_consumers(
    conn: AConn,
    *,
    stream: str | None = None,
    kind: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> list[ConsumerView]:
    """Consumers with their counters, oldest first; each given filter must match."""
    stream_id = None if stream is None else (await resolve_stream(conn, stream, schema=schema)).id
    found = await consumers.list_consumers(
        conn, stream_id=stream_id, metadata=metadata, schema=schema
    )
    return [await consumer_view(conn, c, schema=schema) for c in found if kind in (None, c.kind)]


async def update_consumer(
    conn: AConn, id_or_name: str, changes: Mapping[str, Any], *, schema: str = DEFAULT_SCHEMA
) -> Consumer:
    """Change the given settings; ``deliver_policy`` and the stream are fixed at creation."""
    values = dict(changes)
    for fixed in ("deliver_policy", "stream_id", "kind"):
        if fixed in values:
            raise ConfigurationError(
                f"{fixed}: cannot be changed after creation (to re-deliver records, rewind)"
            )
    consumer = await get_consumer(conn, id_or_name, schema=schema)
    if "name" in values:
        check_name(values["name"])
    if "metadata" in values:
        values["metadata"] = check_metadata(values["metadata"])
    if "filters" in values:
        values["filters"] = await check_filters(conn, values["filters"] or {}, schema=schema)
    return await consumers.update_consumer(conn, consumer, **values, schema=schema)


async def delete_consumer(
    conn: AConn, id_or_name: str, *, schema: str = DEFAULT_SCHEMA
) -> Consumer:
    """Delete a consumer and everything it still owed (pending, in flight, dead)."""
    consumer = await get_consumer(conn, id_or_name, schema=schema)
    await consumers.delete_consumer(conn, consumer, schema=schema)
    return consumer


async def rewind(
    conn: AConn, id_or_name: str, *, after_idx: int = 0, schema: str = DEFAULT_SCHEMA
) -> int:
    """Re-deliver what follows ``after_idx``; returns how many records will come again."""
    consumer = await get_consumer(conn, id_or_name, schema=schema)
    return await consumers.rewind(conn, consumer, after_idx=after_idx, schema=schema)


async def dead_letters(
    conn: AConn, id_or_name: str, *, limit: int = 100, schema: str = DEFAULT_SCHEMA
) -> list[DeadLetter]:
    """The consumer's dead letters, oldest first, with their reasons."""
    consumer = await get_consumer(conn, id_or_name, schema=schema)
    return await delivery.list_dead_letters(conn, consumer, limit=limit, schema=schema)


async def replay(
    conn: AConn,
    id_or_name: str,
    record_ids: list[str] | None = None,
    *,
    schema: str = DEFAULT_SCHEMA,
) -> int:
    """Make dead letters (all, or those of ``record_ids``) pending again; returns how many."""
    consumer = await get_consumer(conn, id_or_name, schema=schema)
    return await delivery.replay_dead_letters(conn, consumer, record_ids=record_ids, schema=schema)
