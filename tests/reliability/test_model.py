"""Model-based test (T1): upstream → stream → consumer → user table, against a Python model.

A Hypothesis ``RuleBasedStateMachine`` drives the real pieces in the test's schema: the stream's
``write`` (snapshots with increasing, duplicated and reordered ``source_version``s), one
consumer's ``claim`` / ``ack`` / ``nack`` with ack deadlines moved by a ``ManualClock``, and a
``TableSink`` applying what is delivered — sometimes twice, sometimes with ids repeated, sometimes
rolled back before the ack ("crash before commit"), sometimes committed without the ack ("crash
after commit"), sometimes held and finished late (after the message was redelivered).

After every step: no user-table row moves to a lower ``updated_idx`` or to a version the stream
never had; the stream's record of each object is the highest ``source_version`` written so far
(a delete is never undone by an older snapshot). At every claim (liveness): a ``next`` that hands
out nothing reports ``num_pending == 0``; a consumer whose ``info`` showed pending records and
nothing held is handed at least one; ``num_pending`` never counts more records than the stream
holds. After a final drain in batches of one (the sync catches up, the clock passes every ack
deadline, the consumer delivers until empty): user table == stream == the upstream's latest
state, deleted objects as tombstones.

Issue #16 (a consumer stalled for good when a nacked or expired message's record got a newer
version) got past this test: an empty claim was accepted silently, nobody compared it with
``num_pending``, and the final drain took batches of 10, more than the model's objects, so the
claim always pulled past the outdated messages and the tables still converged. Hence the
liveness checks, the drain in batches of one, a third object, batches of one drawn more often,
and :meth:`PipelineModel.retry_then_update` (a batch nacked or expired, then newer versions of
some of its records, with or without new records behind them).

The figures line: ``model_steps=… examples=… versions=… lost=0 stale=0 resurrected=0
unexpected=0 stalls=0 overcounts=0 duplicates_absorbed=… liveness_checks=… seed=…``. Replay a
run with ``UPSYNC_TEST_SEED=<seed>``; ``UPSYNC_HYPOTHESIS_PROFILE=long`` runs 2,000 examples of
up to 100 steps; ``UPSYNC_MODEL_EXAMPLES=<n>`` sets the number of examples.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import psycopg
import pytest
from hypothesis import seed as hypothesis_seed
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from psycopg import sql

from upsync.errors import InvalidAckToken
from upsync.records import Message, Record
from upsync.sinks import Route, TableSink
from upsync.sinks.ddl import ensure_table_async
from upsync.sinks.table import ApplyResult
from upsync.stream import (
    ManualClock,
    ack,
    claim,
    create_consumer,
    create_stream,
    create_sync,
    info,
    migrate,
    nack,
    write,
)
from upsync.stream.models import Consumer, Sync, UpstreamObject

AConn = psycopg.AsyncConnection[Any]
T = TypeVar("T")

OBJECTS = ("o1", "o2", "o3")
COLLECTION = "stripe:customer"
ACK_WAIT_MS = 1000
LONG = os.environ.get("UPSYNC_HYPOTHESIS_PROFILE") == "long"
EXAMPLES = int(os.environ.get("UPSYNC_MODEL_EXAMPLES") or 0)
#: batch sizes of a claim: 1 (the API's default, the size that stalled in issue #16) most often
BATCH_SIZES = st.one_of(st.just(1), st.integers(1, 4))
DELIVER_MODES = ("ack", "ack_after_commit", "twice", "repeat_ids", "crash_before_commit",
                 "crash_after_commit", "nack", "hold")  # fmt: skip


@dataclass
class Figures:
    """Counted over every example of one run."""

    steps: int = 0
    examples: int = 0
    versions: int = 0
    lost: int = 0
    stale: int = 0
    resurrected: int = 0
    unexpected: int = 0
    stalls: int = 0
    overcounts: int = 0
    duplicates_absorbed: int = 0
    late_acks_refused: int = 0
    delivered: int = 0
    liveness_checks: int = 0
    retries_outdated: int = 0

    def line(self, seed: int) -> str:
        return (
            f"model_steps={self.steps} examples={self.examples} versions={self.versions} "
            f"lost={self.lost} stale={self.stale} resurrected={self.resurrected} "
            f"unexpected={self.unexpected} stalls={self.stalls} overcounts={self.overcounts} "
            f"duplicates_absorbed={self.duplicates_absorbed} "
            f"late_acks_refused={self.late_acks_refused} delivered={self.delivered} "
            f"liveness_checks={self.liveness_checks} retries_outdated={self.retries_outdated} "
            f"seed={seed}"
        )

    def violations(self) -> tuple[int, ...]:
        return (
            self.lost,
            self.stale,
            self.resurrected,
            self.unexpected,
            self.stalls,
            self.overcounts,
        )


@dataclass
class Context:
    """What every example shares: one event loop, one connection, the schema, the figures."""

    runner: asyncio.Runner
    conn: AConn
    schema: str
    figures: Figures = field(default_factory=Figures)

    def run(self, coro: Awaitable[T]) -> T:
        async def wrap() -> T:
            return await coro

        return self.runner.run(wrap())


@dataclass(frozen=True)
class Snap:
    """One upstream state of one object, as a sync would read it."""

    upstream_id: str
    source_version: int
    data: dict[str, Any] | None
    deleted: bool

    def upstream_object(self) -> UpstreamObject:
        return UpstreamObject(self.upstream_id, self.data, self.source_version, self.deleted)


@dataclass(frozen=True)
class Row:
    """An object as the stream or the user table holds it."""

    updated_idx: int
    deleted: bool
    data: Any
    source_version: int | None = None


class Violation(AssertionError):
    """An invariant broke; the figure named ``kind`` was counted."""


class PipelineModel(RuleBasedStateMachine):
    ctx: Context  # set by the test before running

    def __init__(self) -> None:
        super().__init__()
        self.ctx.figures.examples += 1
        self.clock = ManualClock()
        self.version = 0
        self.upstream: dict[str, Snap] = {}
        self.history: list[Snap] = []
        self.written_best: dict[str, Snap] = {}
        self.held: list[tuple[Message, ...]] = []
        self.table_seen: dict[str, Row] = {}
        self.stream_seen: dict[str, Row] = {}
        self.versions_by_idx: dict[int, Row] = {}
        self.ctx.run(self._setup())

    async def _setup(self) -> None:
        conn, schema = self.ctx.conn, self.ctx.schema
        tag = uuid.uuid4().hex[:10]
        stream = await create_stream(conn, f"s_{tag}", schema=schema)
        self.sync: Sync = await create_sync(
            conn,
            stream_id=stream.id,
            provider="stripe",
            name=f"sync_{tag}",
            collection_ids=[COLLECTION],
            schema=schema,
        )
        self.consumer: Consumer = await create_consumer(
            conn,
            stream_id=stream.id,
            name="model",
            ack_wait_ms=ACK_WAIT_MS,
            schema=schema,
            clock=self.clock,
        )
        self.route = Route(COLLECTION, f"users_{tag}", schema=schema)
        await ensure_table_async(conn, self.route)
        self.sink = TableSink([self.route])

    # upstream

    @rule(obj=st.sampled_from(OBJECTS), n=st.integers(0, 2), synced=st.booleans())
    def change(self, obj: str, n: int, synced: bool) -> None:
        """The object is created or updated upstream (the same payload again is allowed);
        ``synced``: the sync writes it to the stream at once."""
        self._upstream(Snap(obj, self._next_version(), {"id": obj, "n": n}, False), synced)

    @precondition(lambda self: any(not s.deleted for s in self.upstream.values()))
    @rule(data=st.data(), synced=st.booleans())
    def delete(self, data: st.DataObject, synced: bool) -> None:
        """A live object is deleted upstream."""
        live = sorted(k for k, s in self.upstream.items() if not s.deleted)
        obj = data.draw(st.sampled_from(live), label="deleted")
        self._upstream(Snap(obj, self._next_version(), None, True), synced)

    def _next_version(self) -> int:
        self.version += 1
        return self.version

    def _upstream(self, snap: Snap, synced: bool) -> None:
        self.upstream[snap.upstream_id] = snap
        self.history.append(snap)
        self.ctx.figures.versions += 1
        if synced:
            self._write([snap])
        else:
            self.ctx.figures.steps += 1

    # the sync writes snapshots: any of them, in any order, duplicated

    @precondition(lambda self: bool(self.history))
    @rule(data=st.data())
    def sync_writes(self, data: st.DataObject) -> None:
        """A batch of snapshots reaches the stream: late, repeated or out of order."""
        picks = data.draw(
            st.lists(st.integers(0, len(self.history) - 1), min_size=1, max_size=5), label="batch"
        )
        self._write([self.history[i] for i in picks])

    def _write(self, snaps: list[Snap]) -> None:
        self.ctx.run(
            write(
                self.ctx.conn,
                self.sync,
                COLLECTION,
                [s.upstream_object() for s in snaps],
                schema=self.ctx.schema,
                clock=self.clock,
            )
        )
        for s in snaps:
            best = self.written_best.get(s.upstream_id)
            if best is None or (s.source_version, s.deleted) > (best.source_version, best.deleted):
                self.written_best[s.upstream_id] = s
        self.ctx.figures.steps += 1

    # the consumer

    @precondition(lambda self: bool(self.written_best))
    @rule(n=BATCH_SIZES, mode=st.sampled_from(DELIVER_MODES))
    def deliver(self, n: int, mode: str) -> None:
        """Claim a batch and do one of the things a worker can do with it."""
        self.ctx.figures.steps += 1
        messages = self._claim(n)
        if not messages:
            return
        records = [m.record for m in messages]
        if mode == "ack":
            self.ctx.run(self._apply_and_ack([records], messages))
        elif mode == "ack_after_commit":
            self.ctx.run(self._apply([records]))
            self.ctx.run(self._ack(messages))
        elif mode == "twice":
            self.ctx.run(self._apply_and_ack([records, records], messages))
        elif mode == "repeat_ids":
            self.ctx.run(self._apply_and_ack([[*reversed(records), *records]], messages))
        elif mode == "crash_before_commit":
            self.ctx.run(self._apply_then_roll_back(records))
        elif mode == "crash_after_commit":
            self.ctx.run(self._apply([records]))
        elif mode == "nack":
            self.ctx.run(
                nack(
                    self.ctx.conn,
                    self.consumer,
                    [m.ack_token for m in messages],
                    schema=self.ctx.schema,
                    clock=self.clock,
                )
            )
        else:
            self.held.append(messages)

    @precondition(lambda self: bool(self.written_best))
    @rule(n=BATCH_SIZES, data=st.data())
    def retry_then_update(self, n: int, data: st.DataObject) -> None:
        """A batch is nacked, or its worker stalls past the ack deadline; then some of its
        records change upstream and are synced (and maybe other objects too)."""
        self.ctx.figures.steps += 1
        messages = self._claim(n)
        if not messages:
            return
        if data.draw(st.booleans(), label="nack (else expire)"):
            tokens = [m.ack_token for m in messages]
            self.ctx.run(
                nack(self.ctx.conn, self.consumer, tokens, schema=self.ctx.schema, clock=self.clock)
            )
        else:
            self.held.append(messages)  # the worker may still finish late
            self.clock.advance(ms=ACK_WAIT_MS + 1)
        claimed = sorted({m.record.upstream_id for m in messages})
        changed = data.draw(st.lists(st.sampled_from(claimed), unique=True), label="updated")
        rest = [o for o in OBJECTS if o not in claimed]
        others = (
            data.draw(st.lists(st.sampled_from(rest), unique=True), label="others") if rest else []
        )
        snaps = [
            Snap(obj, self._next_version(), {"id": obj, "n": 4}, False)
            for obj in [*changed, *others]
        ]
        for snap in snaps:
            self._upstream(snap, synced=False)
        self.ctx.figures.retries_outdated += len(changed)
        if snaps:
            self._write(snaps)

    def _claim(self, n: int) -> tuple[Message, ...]:
        """``next`` with liveness checked: see the module docstring."""
        conn, schema = self.ctx.conn, self.ctx.schema
        before = self.ctx.run(info(conn, self.consumer, schema=schema, clock=self.clock))
        got = self.ctx.run(claim(conn, self.consumer, n, schema=schema, clock=self.clock))
        self.ctx.figures.liveness_checks += 1
        self.ctx.figures.delivered += len(got.messages)
        records = len(self.written_best)
        for counted in (before, got.info):
            if counted.num_pending > records:
                self._fail("overcounts", f"{counted} for {records} records in the stream")
        if not got.messages and got.info.num_pending:
            self._fail("stalls", f"next({n}) handed nothing while reporting {got.info}")
        if not got.messages and before.num_pending and not before.num_ack_pending:
            self._fail("stalls", f"next({n}) handed nothing; just before, info was {before}")
        return got.messages

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def finish_held(self, data: st.DataObject) -> None:
        """A slow worker applies and acks a batch it claimed earlier (maybe long expired)."""
        self.ctx.figures.steps += 1
        messages = self.held.pop(data.draw(st.integers(0, len(self.held) - 1), label="held"))
        records = [m.record for m in messages]
        remote_ack = data.draw(st.booleans(), label="ack after commit")
        try:
            if remote_ack:
                # the HTTP consumer's way: COMMIT the rows, then ack over the API
                self.ctx.run(self._apply([records]))
                self.ctx.run(self._ack(messages))
            else:
                self.ctx.run(self._apply_and_ack([records], messages))
        except InvalidAckToken:
            # redelivered meanwhile: the ack is refused (and, in one transaction, the apply too)
            self.ctx.figures.late_acks_refused += 1

    async def _ack(self, messages: tuple[Message, ...]) -> None:
        await ack(
            self.ctx.conn, self.consumer, [m.ack_token for m in messages], schema=self.ctx.schema
        )

    @rule(ms=st.sampled_from([300, ACK_WAIT_MS + 1]))
    def time_passes(self, ms: int) -> None:
        """Ack deadlines come closer, or pass (unacked messages become deliverable again)."""
        self.ctx.figures.steps += 1
        self.clock.advance(ms=ms)

    async def _apply(self, batches: list[list[Record]]) -> None:
        async with self.ctx.conn.transaction():
            for batch in batches:
                self._count(await self.sink.apply_async(self.ctx.conn, batch))

    async def _apply_and_ack(
        self, batches: list[list[Record]], messages: tuple[Message, ...]
    ) -> None:
        conn = self.ctx.conn
        absorbed = self.ctx.figures.duplicates_absorbed
        try:
            async with conn.transaction():
                for batch in batches:
                    self._count(await self.sink.apply_async(conn, batch))
                await ack(
                    conn, self.consumer, [m.ack_token for m in messages], schema=self.ctx.schema
                )
        except BaseException:
            self.ctx.figures.duplicates_absorbed = absorbed  # rolled back: nothing absorbed
            raise

    async def _apply_then_roll_back(self, records: list[Record]) -> None:
        async with self.ctx.conn.transaction():
            result = await self.sink.apply_async(self.ctx.conn, records)
            assert not result.rejected, result.rejected
            raise psycopg.Rollback()  # the process died before COMMIT: nothing of it stays

    def _count(self, result: ApplyResult) -> None:
        assert not result.rejected, result.rejected
        self.ctx.figures.duplicates_absorbed += result.stale + result.duplicates

    # invariants

    @invariant()
    def nothing_regresses(self) -> None:
        """No row moves backwards; every row is a version the stream really had."""
        stream = self.ctx.run(self._stream_rows())
        for obj, row in stream.items():
            self._check_stream_row(obj, row)
        self.stream_seen = stream
        table = self.ctx.run(self._table_rows())
        for obj, row in table.items():
            self._check_table_row(obj, row)
        self.table_seen = table

    def _check_stream_row(self, obj: str, row: Row) -> None:
        before = self.stream_seen.get(obj)
        if before is not None and (row.source_version or 0) < (before.source_version or 0):
            self._fail("stale", f"stream record {obj} went back to an older snapshot: {row}")
        if (
            before is not None
            and before.deleted
            and not row.deleted
            and (row.source_version or 0) <= (before.source_version or 0)
        ):
            self._fail("resurrected", f"stream record {obj} came back without a newer one")
        best = self.written_best[obj]
        if row.source_version != best.source_version or row.deleted != best.deleted:
            self._fail("stale", f"stream record {obj} is {row}, the newest written is {best}")
        if not best.deleted and row.data != best.data:
            self._fail("unexpected", f"stream record {obj} holds {row.data}, not {best.data}")

    def _check_table_row(self, obj: str, row: Row) -> None:
        before = self.table_seen.get(obj)
        if before is not None and row.updated_idx < before.updated_idx:
            self._fail("stale", f"user row {obj} regressed from {before} to {row}")
        if before is not None and before.deleted and not row.deleted:
            live = self.versions_by_idx.get(row.updated_idx)
            gone = self.versions_by_idx.get(before.updated_idx)
            if (
                live is None
                or gone is None
                or (live.source_version or 0) <= (gone.source_version or 0)
            ):
                self._fail("resurrected", f"user row {obj} came back: {before} -> {row}")
        version = self.versions_by_idx.get(row.updated_idx)
        if version is None or (version.deleted, version.data) != (row.deleted, row.data):
            self._fail("unexpected", f"user row {obj} is {row}, the stream never had that")

    def _fail(self, kind: str, message: str) -> NoReturn:
        setattr(self.ctx.figures, kind, getattr(self.ctx.figures, kind) + 1)
        raise Violation(message)

    async def _stream_rows(self) -> dict[str, Row]:
        cur = await self.ctx.conn.execute(
            sql.SQL(
                "SELECT upstream_id, updated_idx, deleted, data, source_version FROM {} "
                "WHERE sync_id = %s"
            ).format(sql.Identifier(self.ctx.schema, "records")),
            [self.sync.id],
        )
        rows = {r[0]: Row(r[1], r[2], r[3], r[4]) for r in await cur.fetchall()}
        for row in rows.values():
            # every version the stream ever held, by updated_idx (versions are never reused)
            self.versions_by_idx.setdefault(row.updated_idx, row)
        return rows

    async def _table_rows(self) -> dict[str, Row]:
        cur = await self.ctx.conn.execute(
            sql.SQL("SELECT upstream_id, updated_idx, deleted, data FROM {}").format(
                sql.Identifier(*self.route.qualified_name)
            )
        )
        return {r[0]: Row(r[1], r[2], r[3]) for r in await cur.fetchall()}

    # the end: catch up, drain, compare

    def teardown(self) -> None:
        try:
            self._finish()
        finally:
            # thousands of examples: one table each would exhaust the lock table at DROP SCHEMA
            self.ctx.run(
                self.ctx.conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(
                        sql.Identifier(*self.route.qualified_name)
                    )
                )
            )

    def _finish(self) -> None:
        for obj in sorted({m.record.upstream_id for batch in self.held for m in batch}):
            if not self.upstream[obj].deleted:  # what slow workers hold becomes outdated
                self._upstream(Snap(obj, self._next_version(), {"id": obj, "n": 3}, False), False)
        if self.upstream:
            self._write(list(self.upstream.values()))  # the sync catches up (e.g. reconciles)
            self.nothing_regresses()
        self.clock.advance(ms=ACK_WAIT_MS + 1)  # every held message's deadline passes
        self._drain()
        while self.held:  # slow workers finish last: commit their old rows, then try to ack
            messages = self.held.pop()
            self.ctx.run(self._apply([[m.record for m in messages]]))
            try:
                self.ctx.run(self._ack(messages))
            except InvalidAckToken:
                self.ctx.figures.late_acks_refused += 1
            self.nothing_regresses()
        self._drain()
        self._check_converged()

    def _drain(self) -> None:
        """Deliver in batches of one (the API's default) until ``next`` hands out nothing."""
        for _ in range(100):
            messages = self._claim(1)
            if not messages:
                break
            self.ctx.run(self._apply_and_ack([[m.record for m in messages]], messages))
            self.nothing_regresses()
        else:
            raise AssertionError("the consumer never ran dry")

    def _check_converged(self) -> None:
        stream, table = self.stream_seen, self.table_seen
        for obj, snap in self.upstream.items():
            held, row = stream.get(obj), table.get(obj)
            if held is None or held.deleted != snap.deleted:
                self._fail("lost", f"stream lost {obj}: holds {held}, upstream has {snap}")
            if not snap.deleted and held.data != snap.data:
                self._fail("lost", f"stream holds {held.data} for {obj}, upstream {snap.data}")
            if row is None or row.updated_idx < held.updated_idx:
                self._fail("lost", f"user table lost {obj}: holds {row}, stream has {held}")
            if (row.updated_idx, row.deleted, row.data) != (
                held.updated_idx,
                held.deleted,
                held.data,
            ):
                self._fail("unexpected", f"user row {obj} is {row}, stream has {held}")
        extra = set(table) - set(self.upstream)
        if extra:
            self._fail("unexpected", f"user rows nobody wrote upstream: {sorted(extra)}")


@pytest.fixture
def context(schema_dsn: str, schema: str) -> Iterator[Context]:
    with asyncio.Runner() as runner:

        async def connect() -> AConn:
            conn = await psycopg.AsyncConnection.connect(schema_dsn, autocommit=True)
            await migrate(conn, schema=schema)
            return conn

        conn = runner.run(connect())
        try:
            yield Context(runner, conn, schema)
        finally:
            runner.run(conn.close())


@pytest.mark.timeout(4 * 3600 if LONG or EXAMPLES else 300)
def test_pipeline_matches_the_model(context: Context, seed: int) -> None:
    """Any interleaving of upstream changes, writes, deliveries, crashes and time converges."""

    class Pipeline(PipelineModel):
        ctx = context

    try:
        run_state_machine_as_test(
            hypothesis_seed(seed)(Pipeline),
            settings=settings(
                stateful_step_count=100 if LONG else 30,
                max_examples=EXAMPLES or settings().max_examples,
            ),
        )
    finally:
        print("\n" + context.figures.line(seed))
    assert context.figures.violations() == (0, 0, 0, 0, 0, 0)
