"""The stand-in's in-memory state: objects by type, their order, and the event log.

All reads and writes hold one re-entrant lock, so the ASGI app (event loop thread), the data
generator and live traffic (other threads) may use a store at once. Object modules build on
the primitives here (:meth:`Store.insert`, :meth:`Store.change`, :meth:`Store.remove`), and
every change they make records the matching event.
"""

from __future__ import annotations

import contextvars
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .clock import Clock
from .errors import invalid_request, no_such
from .ids import IdFactory
from .index import Entry, Index, Key
from .resource import Resource
from .snapshot import previous_attributes

__all__ = ["API_VERSION", "EVENT_RETENTION", "RequestInfo", "Store"]

API_VERSION = "2026-10-28.endive"
"""The API version the stand-in speaks (stripe-python 16's pinned version)."""
EVENT_RETENTION = 30 * 86400
"""Events older than this (by the stand-in clock) are gone, as on Stripe."""

Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RequestInfo:
    """The API request behind a change, copied into ``event.request``."""

    id: str | None
    idempotency_key: str | None = None


_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "standin_request", default=None
)
_at: contextvars.ContextVar[int | None] = contextvars.ContextVar("standin_at", default=None)
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("standin_quiet", default=False)


class Store:
    """Objects, indexes and events of one simulated Stripe account (test mode)."""

    def __init__(self, clock: Clock | None = None, seed: int | None = None) -> None:
        from .objects import REGISTRY  # the object modules import this one

        self.clock = clock or Clock()
        self.resources: dict[str, Resource] = REGISTRY
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.ids = IdFactory(random.Random(self.rng.random()))
        # own generator: the account id must not shift the ids of generated data
        account_rng = random.Random(None if seed is None else f"account/{seed}")
        self.account_id = IdFactory(account_rng).new("acct")
        """the platform account behind every API key (``GET /v1/account``)"""
        self.account_created = self.clock.now()
        self.pinned_versions: Counter[str] = Counter()
        """API versions requests pinned with ``Stripe-Version``, and how often"""
        self.event_delay = 0.0
        """max seconds a new event stays out of ``/v1/events`` (Stripe's eventual consistency)"""
        self._seq = itertools.count()
        self._objects: dict[str, Entry] = {}
        self._tables: dict[str, Index] = {name: Index() for name in REGISTRY}
        self._children: dict[tuple[str, str], dict[str, Index]] = {}
        self._listeners: list[Listener] = []
        self.secrets: dict[str, str] = {}
        """webhook endpoint id → signing secret (never part of the endpoint object)"""
        self.rolled_secrets: dict[str, list[tuple[str, int]]] = {}
        """endpoint id → earlier secrets still signing, with their expiry (clock seconds)"""

    def now(self) -> int:
        """Now, by the clock, or the time set by :meth:`at` (backdated generated data)."""
        at = _at.get()
        return self.clock.now() if at is None else at

    @contextmanager
    def at(self, timestamp: int) -> Iterator[None]:
        """Within the block, new objects and events get ``created = timestamp``."""
        token = _at.set(timestamp)
        try:
            yield
        finally:
            _at.reset(token)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Within the block, changes record no events (bulk data without an event history)."""
        token = _quiet.set(True)
        try:
            yield
        finally:
            _quiet.reset(token)

    @contextmanager
    def request(self, info: RequestInfo) -> Iterator[None]:
        """Within the block, events name this request as their cause."""
        token = _request.set(info)
        try:
            yield
        finally:
            _request.reset(token)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for each new event (under the lock: return quickly)."""
        with self.lock:
            self._listeners.append(listener)
        return lambda: self._unsubscribe(listener)

    def _unsubscribe(self, listener: Listener) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def resource(self, type_: str) -> Resource:
        return self.resources[type_]

    def new_id(self, type_: str) -> str:
        return self.ids.new(self.resources[type_].prefix)

    def table(self, type_: str) -> Index:
        return self._tables[type_]

    def children(self, type_: str, fk: str, parent_id: str) -> Index:
        """The index of ``type_`` objects whose ``fk`` is ``parent_id``."""
        return self._children.setdefault((type_, fk), {}).setdefault(parent_id, Index())

    def find(self, oid: str) -> Entry | None:
        """The entry with this id, whatever its type (deleted ones included)."""
        return self._objects.get(oid)

    def get(self, type_: str, oid: str, param: str = "id") -> Entry:
        """The live entry of ``type_`` with id ``oid``; 404 ``resource_missing`` otherwise."""
        entry = self._objects.get(oid)
        if entry is None or entry.type != type_ or entry.deleted:
            raise no_such(type_, oid, param, status=404 if param == "id" else 400)
        return entry

    def cursor_key(self, type_: str) -> Callable[[str, str], Key]:
        def key(oid: str, param: str) -> Key:
            found = self._tables[type_].key_of(oid)
            if found is None:
                raise no_such(type_, oid, param, status=400)
            return found

        return key

    def insert(self, type_: str, obj: dict[str, Any], event: str | None = "created") -> Entry:
        """Store a new object and record ``<stem>.created`` (or the given event suffix)."""
        with self.lock:
            if obj["id"] in self._objects:
                raise invalid_request(f"{type_} already exists: {obj['id']}", param="id")
            key = (int(obj.get("created") or self.now()), next(self._seq))
            entry = Entry(type_, obj, key, tag=obj["type"] if type_ == "event" else "")
            self._objects[obj["id"]] = entry
            self._tables[type_].add(entry)
            for fk in self.resources[type_].parents:
                if isinstance(obj.get(fk), str):
                    self.children(type_, fk, obj[fk]).add(entry)
            if event is not None:
                self._emit_for(type_, event, self.render(entry))
            return entry

    @contextmanager
    def change(
        self, type_: str, oid: str, extra: tuple[str, ...] = (), updated: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Mutate an object in the block; then record ``<stem>.updated`` with what changed.

        ``extra`` event suffixes (``paid``, ``finalized``) are recorded after it. Validate
        before mutating: an exception leaves earlier mutations in place.
        """
        with self.lock:
            entry = self.get(type_, oid)
            before = self.render(entry)
            obj = entry.obj
            parents = {fk: obj.get(fk) for fk in self.resources[type_].parents}
            yield obj
            entry.obj = obj
            self._reparent(entry, obj, parents)
            after = self.render(entry)
            changed = previous_attributes(before, after)
            if changed and updated:
                self._emit_for(type_, "updated", after, changed)
            for suffix in extra:
                self._emit_for(type_, suffix, after)

    def _reparent(self, entry: Entry, obj: dict[str, Any], old: dict[str, Any]) -> None:
        for fk, was in old.items():
            now = obj.get(fk)
            if now != was:
                if isinstance(was, str):
                    self.children(entry.type, fk, was).discard(entry.id)
                if isinstance(now, str):
                    self.children(entry.type, fk, now).add(entry)

    def remove(self, type_: str, oid: str, event: str | None = "deleted") -> dict[str, Any]:
        """Delete an object: it leaves every list; retrieve answers its stub. Returns the stub."""
        with self.lock:
            entry = self.get(type_, oid)
            last = self.render(entry)
            entry.deleted = True
            self._tables[type_].discard(oid)
            for fk in self.resources[type_].parents:
                if isinstance(last.get(fk), str):
                    self.children(type_, fk, last[fk]).discard(oid)
            if event is not None:
                # the event carries the last full state, so consumers can still read it
                self._emit_for(type_, event, last)
            return {"id": oid, "object": last["object"], "deleted": True}

    def render(self, entry: Entry) -> dict[str, Any]:
        """A deep copy of the object as the API shows it (embedded lists filled in)."""
        with self.lock:
            if entry.deleted:
                return {"id": entry.id, "object": entry.type, "deleted": True}
            obj = entry.obj  # a fresh copy: the caller may change it
            resource = self.resources[entry.type]
            for name, sub in resource.sublists.items():
                obj[name] = self.embedded_list(sub.child, sub.fk, obj["id"], sub.url)
            if resource.render is not None:
                resource.render(self, obj)
            return obj

    def embedded_list(self, child: str, fk: str, parent_id: str, url: str) -> dict[str, Any]:
        """The first page (10, newest first) of a parent's children, as Stripe embeds it."""
        index = self.children(child, fk, parent_id)
        page = [self.render(e) for e in itertools.islice(index.newest_first(), 10)]
        return {
            "object": "list",
            "data": page,
            "has_more": len(index) > 10,
            "url": url.format(id=parent_id),
        }

    def _emit_for(
        self, type_: str, suffix: str, obj: dict[str, Any], prev: dict[str, Any] | None = None
    ) -> None:
        stem = self.resources[type_].events
        if stem is not None:
            self.emit(f"{stem}.{suffix}", obj, prev)

    def emit(
        self, event_type: str, obj: dict[str, Any], prev: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Record an event about ``obj`` (already a snapshot) and tell the listeners.

        Returns the event, or ``None`` when it is older than the 30-day horizon already or
        the store is :meth:`quiet`.
        """
        with self.lock:
            created = self.now()
            if created < self.clock.now() - EVENT_RETENTION or _quiet.get():
                return None  # backdated history already past the 30-day horizon, or quiet
            info = _request.get()
            data: dict[str, Any] = {"object": obj}
            if prev is not None:
                data["previous_attributes"] = prev
            event = {
                "id": self.ids.new("evt"),
                "object": "event",
                "api_version": API_VERSION,
                "created": created,
                "data": data,
                "livemode": False,
                "pending_webhooks": 0,
                "request": {
                    "id": info.id if info else None,
                    "idempotency_key": info.idempotency_key if info else None,
                },
                "type": event_type,
            }
            entry = self.insert("event", event, event=None)
            if self.event_delay > 0:
                entry.visible_at = time.monotonic() + self.rng.uniform(0, self.event_delay)
            for listener in list(self._listeners):
                listener(event)
            return event

    def expire_events(self) -> int:
        """Forget events older than 30 days by the clock; returns how many went."""
        with self.lock:
            gone = self._tables["event"].expire_before(self.clock.now() - EVENT_RETENTION)
            for entry in gone:
                self._objects.pop(entry.id, None)
            return len(gone)

    def retrieve(self, type_: str, oid: str) -> dict[str, Any]:
        """An object as ``GET`` shows it (a deleted one as its stub); 404 if unknown."""
        with self.lock:
            entry = self._objects.get(oid)
            if entry is None or entry.type != type_:
                raise no_such(type_, oid)
            return self.render(entry)

    def create(self, type_: str, params: dict[str, Any]) -> dict[str, Any]:
        """Create an object as ``POST /v1/<type>s`` would (params as decoded form data)."""
        from .formdata import Params

        create = self.resources[type_].create
        if create is None:
            raise invalid_request(f"{type_} objects cannot be created through the API")
        with self.lock:
            return create(self, Params(params))

    def update(self, type_: str, oid: str, params: dict[str, Any]) -> dict[str, Any]:
        """Update an object as ``POST /v1/<type>s/{id}`` would; returns it rendered."""
        from .formdata import Params
        from .objects.common import apply_updates

        resource = self.resources[type_]
        with self.lock:
            with self.change(type_, oid) as obj:
                if resource.update is not None:
                    resource.update(self, obj, Params(params))
                else:
                    apply_updates(obj, Params(params), resource.updatable)
            return self.render(self.get(type_, oid))

    def delete(self, type_: str, oid: str) -> dict[str, Any]:
        """Delete (or, for subscriptions, cancel) an object as ``DELETE`` would."""
        delete = self.resources[type_].delete
        if delete is None:
            raise invalid_request(f"{type_} objects cannot be deleted")
        with self.lock:
            return delete(self, oid)

    def live(self, type_: str) -> Iterator[dict[str, Any]]:
        """Every live object of a type, rendered, newest first (a snapshot under the lock)."""
        with self.lock:
            entries = list(self._tables[type_].newest_first())
            return iter([self.render(e) for e in entries])

    def live_ids(self, type_: str) -> set[str]:
        """The ids of every live object of a type, without rendering the objects (cheap: a
        check of a whole account against a table needs only these)."""
        with self.lock:
            return {e.id for e in self._tables[type_].newest_first()}

    def count(self, type_: str) -> int:
        """How many live objects of a type exist."""
        with self.lock:
            return len(self._tables[type_])
