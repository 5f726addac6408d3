"""A seeded random interleaving of writes, claims, acks, nacks, crashes and ack timeouts.

Checks at every claim that no two workers hold the same record within its ack window, and at
the end (once writes stop and a reliable worker drains the consumer) that the latest version of
every record was delivered and acked: a guarded apply of everything acked equals the stream.
"""

from __future__ import annotations

import contextlib
import random
from datetime import datetime, timedelta
from typing import Any

import psycopg

from upsync.errors import InvalidAckToken
from upsync.records import Record
from upsync.stream import (
    ManualClock,
    Stream,
    Sync,
    UpstreamObject,
    ack,
    claim,
    create_consumer,
    deletion,
    info,
    nack,
    write,
)

from .helpers import records

AConn = psycopg.AsyncConnection[Any]
ACK_WAIT = timedelta(milliseconds=1000)
Held = dict[str, tuple[str, Record, datetime]]


async def test_every_latest_version_is_eventually_acked(
    db: AConn, schema: str, stream: Stream, sync: Sync, rng: random.Random, clock: ManualClock
) -> None:
    consumer = await create_consumer(
        db, stream_id=stream.id, name="c", ack_wait_ms=1000, schema=schema, clock=clock
    )
    ids = [f"cus_{i}" for i in range(25)]
    held: dict[int, Held] = {w: {} for w in range(3)}
    applied: dict[str, Record] = {}
    version = 0

    def apply(record: Record) -> None:
        current = applied.get(record.id)
        if current is None or current.updated_idx < record.updated_idx:
            applied[record.id] = record

    for _ in range(300):
        op = rng.random()
        worker = held[rng.randrange(3)]
        if op < 0.3:
            version += rng.randint(-3, 5)  # sometimes an older snapshot arrives
            objs = [
                deletion(i, version)
                if rng.random() < 0.1
                else UpstreamObject(i, {"v": version}, version)
                for i in rng.sample(ids, rng.randint(1, 6))
            ]
            await write(db, sync, "stripe:customer", objs, schema=schema, clock=clock)
        elif op < 0.55:
            got = await claim(db, consumer, rng.randint(1, 5), schema=schema, clock=clock)
            for m in got.messages:
                for other in held.values():
                    if other is not worker and m.record.id in other:
                        assert other[m.record.id][2] <= clock(), "two workers hold one message"
                worker[m.record.id] = (m.ack_token, m.record, clock() + ACK_WAIT)
        elif op < 0.75 and worker:
            chosen = rng.sample(sorted(worker), rng.randint(1, len(worker)))
            entries = [worker.pop(rid) for rid in chosen]
            try:
                await ack(db, consumer, [e[0] for e in entries], schema=schema)
            except InvalidAckToken:
                continue  # one of them expired and was taken again: nothing was acked
            for _, record, _ in entries:
                apply(record)
        elif op < 0.85 and worker:
            token = worker.pop(rng.choice(sorted(worker)))[0]
            with contextlib.suppress(InvalidAckToken):
                await nack(db, consumer, [token], schema=schema, clock=clock)
        elif op < 0.92:
            worker.clear()  # the worker crashes and forgets what it held
        else:
            clock.advance(ms=rng.choice([10, 1001]))

    for _ in range(100):  # writes stopped: a reliable worker drains everything
        clock.advance(ms=1001)
        got = await claim(db, consumer, 50, schema=schema, clock=clock)
        if not got.messages:
            break
        await ack(db, consumer, [m.ack_token for m in got.messages], schema=schema)
        for m in got.messages:
            apply(m.record)

    assert (await info(db, consumer, schema=schema, clock=clock)).to_dict() == {
        "num_pending": 0,
        "num_ack_pending": 0,
        "num_dead": 0,
    }
    stream_rows = await records(db, schema)
    assert {r.upstream_id: (r.updated_idx, r.deleted, dict(r.data)) for r in applied.values()} == {
        k: (v["updated_idx"], v["deleted"], v["data"]) for k, v in stream_rows.items()
    }
