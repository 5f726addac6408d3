"""The Stripe source of one sync: backfill, then follow events, with webhooks as an accelerator.

The order of work follows Sequin's (sequin-contract §4.3, stripe-contract §2.4):

1. remember where ``/v1/events`` stands *before* reading anything else;
2. backfill every selected collection (in parallel, resumable: each page is written together
   with its cursor, so a restart continues after the last durable page);
3. follow ``/v1/events`` from the remembered point — this catches every change made during the
   backfill — and poll every ``poll_interval`` seconds; each event makes the source re-read the
   object (or write a tombstone for a real deletion);
4. if the event cursor has fallen out of Stripe's 30-day window (or on the reconciliation
   schedule), re-list everything: changed objects are rewritten, objects gone upstream become
   tombstones, and the difference is reported as drift.

Why the result cannot regress is explained in :mod:`upsync.sources.stripe.snapshots`. One more
rule keeps reads of one object from overlapping (which is what could otherwise let an older read
finish last): event re-reads, webhook re-reads and reconciliation of an object never run at the
same time — re-reads of one object are serialized by a per-object lock, webhooks only accelerate
collections whose backfill is done, and reconciliation runs in place of polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from upsync.crashpoints import crash_point
from upsync.errors import UpstreamRejected, UpsyncError
from upsync.sources.stripe import signature
from upsync.sources.stripe.client import Page, StripeHTTP
from upsync.sources.stripe.collections import StripeCollection, collection
from upsync.sources.stripe.events import Action, EventWindow, action_for, related_reads
from upsync.sources.stripe.ids import InvalidObjectId, is_object_id, path_segment
from upsync.sources.stripe.listing import Slice, complete_nested, read_page, walk
from upsync.sources.stripe.milestones import BackfillLog
from upsync.sources.stripe.snapshots import CursorUpdate, Snapshot, snapshot_of, tombstone

__all__ = ["STRIPE_EPOCH", "CollectionProgress", "SourceStatus", "StreamPort", "StripeSource"]

#: No Stripe object is older than Stripe itself (2011-01-01): the lower end of every backfill.
STRIPE_EPOCH = 1_293_840_000
_KEEP_PAGES = 4

_log = logging.getLogger(__name__)


class StreamPort(Protocol):
    """What the source needs from the stream, for one sync."""

    async def write(
        self, collection_id: str, snapshots: Sequence[Snapshot], cursor: CursorUpdate | None = None
    ) -> int:
        """Write snapshots (and the cursor) in one transaction; return how many changed."""

    async def save_cursor(self, *cursors: CursorUpdate) -> None:
        """Store cursors without writing any snapshot, all in one transaction."""

    async def load_cursors(self) -> dict[str, Any]:
        """The sync's stored cursors (``{}`` for a new sync)."""

    async def live_upstream_ids(self, collection_id: str, below_version: int) -> set[str]:
        """Upstream ids of live (not deleted) records whose version is below ``below_version``."""

    async def backfill_completed(self) -> None:
        """Mark the sync's initial backfill complete (sets ``initial_backfill_completed_at``)."""

    async def held_upstream_ids(self, collection_id: str, upstream_ids: Iterable[str]) -> set[str]:
        """Which of ``upstream_ids`` the stream holds a record of (live or deleted)."""


@dataclass
class CollectionProgress:
    """Backfill progress of one collection: its ``created`` slices, as durably written.

    Each slice ``i`` is stored under the sync's ``backfill`` cursor as ``"<collection>#<i>"``,
    written in the transaction of that slice's pages — so concurrent slices never record each
    other's uncommitted progress, and a resumed backfill reads nothing twice.
    """

    collection_id: str
    slices: dict[int, Slice] = field(default_factory=dict)
    fetched: int = 0
    """objects read by this run (a resumed run reads only what was not durable yet)"""

    @property
    def count(self) -> int:
        """Objects backfilled so far, in all runs."""
        return sum(piece.count for piece in self.slices.values())

    @property
    def done(self) -> bool:
        """Every slice has been read to its end."""
        return bool(self.slices) and all(piece.done for piece in self.slices.values())

    def key(self, i: int) -> tuple[str, str]:
        """The cursor path of slice ``i``."""
        return ("backfill", f"{self.collection_id}#{i}")

    @classmethod
    def from_state(cls, collection_id: str, stored: Mapping[str, Any]) -> CollectionProgress:
        """Rebuild from the ``backfill`` cursor; a new collection starts as one open slice."""
        prefix = f"{collection_id}#"
        slices = {
            int(key.removeprefix(prefix)): Slice(**state)
            for key, state in stored.items()
            if key.startswith(prefix)
        }
        return cls(collection_id, slices or {0: Slice(gte=STRIPE_EPOCH)})


@dataclass
class SourceStatus:
    """What a person (or ``/v1/syncs/{id}``) wants to know about a running source."""

    backfill: dict[str, CollectionProgress] = field(default_factory=dict)
    events_processed: int = 0
    last_poll_at: float | None = None
    lag_seconds: float | None = None
    drift: int = 0
    last_error: str | None = None
    reconciliations: int = 0


def _now_us() -> int:
    return time.time_ns() // 1000


class StripeSource:
    """Keeps one sync's stream equal to one Stripe account (see the module doc)."""

    def __init__(
        self,
        http: StripeHTTP,
        port: StreamPort,
        collection_ids: Iterable[str],
        *,
        webhook_secrets: Sequence[str] = (),
        poll_interval: float = 0.5,
        reconcile_every: float | None = 24 * 3600,
        parallel: int = 8,
        on_progress: Callable[[CollectionProgress], None] | None = None,
        label: str = "stripe source",
        progress_every: int = 10_000,
    ) -> None:
        self.http = http
        self.port = port
        self.collections = [collection(c) for c in collection_ids]
        self.collection_ids = [c.collection_id for c in self.collections]
        self.webhook_secrets = list(webhook_secrets)
        self.poll_interval = poll_interval
        self.reconcile_every = reconcile_every
        self.on_progress = on_progress
        self.parallel = parallel
        self._walkers = asyncio.Semaphore(parallel)
        self._active = 0
        self.status = SourceStatus()
        self.window = EventWindow()
        self._reading = _KeyedLocks()
        self._backfilled: set[str] = set()
        self._last_reconcile = time.monotonic()
        self._stored_backfill: dict[str, Any] = {}
        self.needs_reconcile = False
        """the event cursor expired: the next loop iteration re-lists everything"""
        self.milestones = BackfillLog(label, every_objects=progress_every)
        """info-level log lines: backfill started, progress, complete; live on events"""

    async def run(self, stop: asyncio.Event) -> None:
        """Backfill, then follow events until ``stop`` is set. Safe to restart at any point."""
        await self.start()
        await self.backfill()
        while not stop.is_set():
            due = (
                self.reconcile_every is not None
                and time.monotonic() - self._last_reconcile >= self.reconcile_every
            )
            try:
                if self.needs_reconcile or due:
                    await self.reconcile()
                await self.poll_once()
                self.status.last_error = None
                self.milestones.live(self.poll_interval)
            except UpsyncError as e:
                # transient upstream trouble: report it, keep going; the cursor did not move
                self.status.last_error = str(e)
                _log.warning("stripe source: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_interval)

    async def start(self) -> None:
        """Load the stored cursors; on a new sync, remember where the event stream stands."""
        cursors = await self.port.load_cursors()
        self._stored_backfill = dict(cursors.get("backfill") or {})
        self.window = EventWindow.from_state(cursors.get("events"))
        if self.window.cursor == 0:
            await self._start_events_cursor()
        elif await self._cursor_expired():
            self.needs_reconcile = True

    async def _start_events_cursor(self) -> None:
        page = await self.http.get("/v1/events", {"limit": 1})
        newest = page.data[0]["created"] if page.data else int(page.sent_at // 1_000_000)
        self.window = EventWindow(cursor=int(newest))
        await self.port.save_cursor((("events",), self.window.to_state()))

    async def _cursor_expired(self) -> bool:
        """Whether events since the cursor may be gone: the oldest one we still need is missing."""
        newest_seen = max(self.window.seen, key=lambda i: self.window.seen[i], default=None)
        if newest_seen is None:
            return False
        try:
            await self.http.get(f"/v1/events/{path_segment(newest_seen)}")
        except UpstreamRejected as e:
            if e.status == 404:
                _log.warning("stripe source: event cursor expired; reconciling")
                return True
            raise
        return False

    async def backfill(self) -> None:
        """Backfill every collection not finished yet; resumable (call :meth:`start` first).

        Collections run in parallel, and so do ``created`` slices of a large collection (at
        most ``parallel`` slices at once): a walk through one list is sequential by nature, so
        slicing is what lets a backfill use its whole request budget.
        """
        stored = self._stored_backfill
        self.status.backfill = {
            c.collection_id: CollectionProgress.from_state(c.collection_id, stored)
            for c in self.collections
        }
        started = time.monotonic()
        pending = [p for p in self.status.backfill.values() if not p.done]
        try:
            async with asyncio.TaskGroup() as group:
                for coll in self.collections:
                    progress = self.status.backfill[coll.collection_id]
                    group.create_task(self._backfill_one(coll, progress))
        except BaseExceptionGroup as group_error:
            # siblings were cancelled; what the caller needs is the error that started it
            raise _first_leaf(group_error) from None
        self._backfilled.update(self.collection_ids)
        await self.port.backfill_completed()
        if pending:
            _log.info(
                "%s: initial backfill complete: %d objects in %d collection(s) in %.1f s",
                self.milestones.label,
                sum(p.count for p in self.status.backfill.values()),
                len(self.status.backfill),
                time.monotonic() - started,
            )

    async def _backfill_one(self, coll: StripeCollection, progress: CollectionProgress) -> None:
        if progress.done:
            return
        self.milestones.started(coll.collection_id, progress.count)
        async with asyncio.TaskGroup() as group:
            for i, piece in list(progress.slices.items()):
                if not piece.done:
                    group.create_task(self._walk(coll, progress, i, group))
        self.milestones.completed(coll.collection_id, progress.count)

    async def _walk(
        self,
        coll: StripeCollection,
        progress: CollectionProgress,
        i: int,
        group: asyncio.TaskGroup,
    ) -> None:
        """Walk slice ``i``; while walkers are idle, hand its older half to a new walker."""
        async with self._walkers:
            self._active += 1
            try:
                while not progress.slices[i].done:
                    page = await read_page(self.http, coll, progress.slices[i])
                    crash_point("source.page_fetched")
                    advanced = progress.slices[i].advanced(page)
                    await self._write_page(
                        coll, progress, page, (progress.key(i), advanced.to_state())
                    )
                    progress.slices[i] = advanced
                    self.milestones.progress(coll.collection_id, progress.count)
                    if (
                        not advanced.done
                        and self._active < self.parallel
                        and not self.http.limiter.saturated()  # more walkers would only queue
                    ):
                        await self._split(coll, progress, i, page, group)
            finally:
                self._active -= 1

    async def _split(
        self,
        coll: StripeCollection,
        progress: CollectionProgress,
        i: int,
        page: Page,
        group: asyncio.TaskGroup,
    ) -> None:
        """Hand the older part of slice ``i``'s unread range to a new walker.

        The cut keeps about :data:`_KEEP_PAGES` pages' worth of time (judged from the span of
        the page just read) and hands away everything older, so walkers leapfrog through dense
        history instead of bisecting years of emptiness.
        """
        piece = progress.slices[i]
        newest, oldest = page.data[0].get("created"), page.data[-1].get("created")
        if type(newest) is not int or type(oldest) is not int:
            return  # objects without `created` (invoice items carry `date`) are walked whole
        low = piece.gte if piece.gte is not None else STRIPE_EPOCH
        middle = max(low + 1, oldest - _KEEP_PAGES * max(newest - oldest, 1))
        if middle >= oldest:
            return
        kept = dataclasses.replace(piece, gte=middle)
        handed = Slice(gte=low, lt=middle)
        j = max(progress.slices) + 1
        # both halves are recorded together, or neither: no object can fall between them
        await self.port.save_cursor(
            (progress.key(i), kept.to_state()), (progress.key(j), handed.to_state())
        )
        progress.slices[i], progress.slices[j] = kept, handed
        group.create_task(self._walk(coll, progress, j, group))

    async def _write_page(
        self, coll: StripeCollection, progress: CollectionProgress, page: Page, cursor: Any
    ) -> None:
        snapshots = [snapshot_of(obj, page.sent_at) for obj in page.data]
        await self.port.write(coll.collection_id, snapshots, cursor)
        progress.fetched += len(page.data)
        if self.on_progress is not None:
            self.on_progress(progress)

    async def poll_once(self) -> int:
        """Read events since the cursor and apply the new ones; returns how many were new."""
        events: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, "created": {"gte": self.window.since}}
            if after:
                params["starting_after"] = after
            page = await self.http.get("/v1/events", params)
            events.extend(page.data)
            if not page.has_more or not page.data:
                break
            after = str(page.data[-1]["id"])
        fresh = self.window.fresh(events)
        if fresh:
            crash_point("source.events_fetched")
        await self._apply(self._actions(fresh))
        self.window.mark(fresh)
        await self.port.save_cursor((("events",), self.window.to_state()))
        self.status.events_processed += len(fresh)
        self.status.last_poll_at = time.time()
        if fresh:
            self.status.lag_seconds = max(time.time() - float(fresh[-1]["created"]), 0.0)
        return len(fresh)

    def _actions(self, events: Iterable[Mapping[str, Any]]) -> Iterable[Action]:
        """The actions events ask for; one naming a malformed id is skipped (and logged)."""
        for e in events:
            for action in (
                action_for(e, self.collection_ids),
                *related_reads(e, self.collection_ids),
            ):
                if action is None:
                    continue
                if not is_object_id(action.upstream_id):
                    # a poll that refused the whole page would stall on this event forever
                    _log.warning("stripe source: event %s skipped: %s", e.get("id"), _bad(action))
                    continue
                yield action

    async def _apply(self, actions: Iterable[Action]) -> None:
        """Carry out actions; several for one object collapse into the last (it re-reads)."""
        latest: dict[tuple[str, str], Action] = {}
        for action in actions:
            key = (action.collection.collection_id, action.upstream_id)
            latest.pop(key, None)
            latest[key] = action
        results = await asyncio.gather(*(self._carry_out(a) for a in latest.values()))
        by_collection: dict[str, list[Snapshot]] = {}
        for action, snap in zip(latest.values(), results, strict=True):
            if snap is not None:
                by_collection.setdefault(action.collection.collection_id, []).append(snap)
        for n, (collection_id, snapshots) in enumerate(by_collection.items()):
            if n:
                crash_point("source.mid_event_batch")
            await self.port.write(collection_id, snapshots)

    async def _carry_out(self, action: Action) -> Snapshot | None:
        """The snapshot an action yields, or ``None`` when the deletion rule says write nothing.

        The deletion rule: a tombstone (from a ``*.deleted`` event, or a re-read answered by a
        404 or a deleted stub) is written only for an object the stream already holds. An event
        can name any id — a signed webhook included — and a 404 cannot tell "deleted" from
        "never existed"; so an object the stream never held stays absent instead of appearing
        as a deleted row in users' tables. Nothing is lost: an object created and deleted
        between two polls was never visible, and backfill and polling never run at once, so
        a held object's record is durable before any event about it is applied.
        """
        # reads of one object never overlap, so read order is version order (see the module doc)
        async with self._reading.hold((action.collection.collection_id, action.upstream_id)):
            if action.kind == "tombstone":
                snap = tombstone(action.upstream_id, _now_us(), action.last)
            else:
                snap = await self.read(action.collection, action.upstream_id)
            if snap.deleted and not await self._held(action.collection, action.upstream_id):
                _log.info(
                    "stripe source: %s %s is gone upstream and was never synced; nothing written",
                    action.collection.collection_id,
                    action.upstream_id,
                )
                return None
            return snap

    async def _held(self, coll: StripeCollection, upstream_id: str) -> bool:
        held = await self.port.held_upstream_ids(coll.collection_id, [upstream_id])
        return upstream_id in held

    async def read(self, coll: StripeCollection, upstream_id: str) -> Snapshot:
        """The current state of one object: a snapshot, or a tombstone if it is gone.

        Raises :class:`InvalidObjectId` (before any request) unless ``upstream_id`` is shaped
        like a Stripe id. Whether a tombstone is then written is :meth:`_carry_out`'s rule.
        """
        sent_at = _now_us()
        try:
            page = await self.http.get(coll.retrieve_path(upstream_id))
        except UpstreamRejected as e:
            if e.status == 404:
                return tombstone(upstream_id, sent_at)
            raise
        await complete_nested(self.http, coll, page.body)
        return snapshot_of(page.body, page.sent_at)

    async def reconcile(self) -> int:
        """Re-list every collection; rewrite what differs, tombstone what is gone. Returns drift."""
        started = _now_us()
        await self._start_events_cursor_if_behind()
        drift = 0
        for coll in self.collections:
            seen: set[str] = set()
            async for page in walk(self.http, coll):
                snapshots = [snapshot_of(obj, page.sent_at) for obj in page.data]
                seen.update(s.upstream_id for s in snapshots)
                drift += await self.port.write(coll.collection_id, snapshots)
            gone = await self.port.live_upstream_ids(coll.collection_id, below_version=started)
            stones = [tombstone(i, _now_us()) for i in sorted(gone - seen)]
            if stones:
                drift += await self.port.write(coll.collection_id, stones)
        self.status.drift += drift
        self.status.reconciliations += 1
        self.needs_reconcile = False
        self._last_reconcile = time.monotonic()
        return drift

    async def _start_events_cursor_if_behind(self) -> None:
        """Before re-listing, move the event cursor to now: the re-list covers everything older."""
        page = await self.http.get("/v1/events", {"limit": 1})
        if page.data:
            newest = int(page.data[0]["created"])
            if newest > self.window.cursor:
                self.window = EventWindow(cursor=newest, overlap=self.window.overlap)
        await self.port.save_cursor((("events",), self.window.to_state()))

    async def handle_webhook(self, body: bytes, header: str | None, *, now: float) -> bool:
        """Verify and apply one webhook delivery; returns whether it changed anything.

        The signature is checked before the body is parsed (an invalid one raises
        :class:`WebhookSignatureError` and writes nothing). A valid event is applied at once for
        collections whose backfill is done; polling still processes it later, so a duplicate
        or a dropped webhook changes nothing in the end.
        """
        signature.verify(body, header, self.webhook_secrets, now=now)
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UpstreamRejected("webhook body is not JSON", status=400) from None
        if not isinstance(event, dict) or event.get("object") != "event":
            raise UpstreamRejected("webhook body is not a Stripe event", status=400)
        action = action_for(event, self.collection_ids)
        if action is None or action.collection.collection_id not in self._backfilled:
            return False
        if not is_object_id(action.upstream_id):
            raise InvalidObjectId(action.upstream_id)
        if str(event.get("id")) in self.window.seen:
            return False  # already applied by polling
        snap = await self._carry_out(action)
        if snap is None:
            return False
        return await self.port.write(action.collection.collection_id, [snap]) > 0


def _bad(action: Action) -> str:
    return f"{action.collection.collection_id} {InvalidObjectId(action.upstream_id)}"


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class _KeyedLocks:
    """One lock per key, kept only while someone holds or awaits it (no growth over time)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
