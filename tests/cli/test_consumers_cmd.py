"""``upsync consumers …`` and ``upsync tail`` against records written with the library."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from tests.cli.conftest import Run, one_error_line
from tests.world import stripe_sync
from upsync.stream import UpstreamObject, claim, get_consumer, get_stream, info, nack
from upsync.stream import write as write_records

AConn = psycopg.AsyncConnection[Any]


@pytest.fixture
async def lib(pg_dsn: str) -> AsyncIterator[AConn]:
    """A library connection (autocommit) to the test database."""
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        yield conn


async def write_subscriptions(conn: AConn, schema: str, ids: list[str]) -> None:
    stream = await get_stream(conn, "default", schema=schema)
    sync = await stripe_sync(
        conn, schema, stream.id, collection_ids=["stripe:subscription", "stripe:customer"]
    )
    subs = [UpstreamObject(i, {"id": i, "status": "active"}, source_version=1) for i in ids]
    await write_records(conn, sync, "stripe:subscription", subs, schema=schema)
    customer = [UpstreamObject("cus_1", {"id": "cus_1"}, source_version=1)]
    await write_records(conn, sync, "stripe:customer", customer, schema=schema)


async def test_consumer_commands(
    upsync: Run,
    ready: dict[str, str],
    lib: AConn,
    schema: str,
) -> None:
    await write_subscriptions(lib, schema, ["sub_1", "sub_2"])
    created = upsync(
        "consumers", "create", "billing", "--collection", "subscription",
        "--max-deliver", "1", "--ack-wait-ms", "60000", "--json", env=ready,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    billing = json.loads(created.stdout)
    assert billing["filters"]["collection_id"] == "stripe:subscription"
    assert billing["max_deliver"] == 1 and billing["num_pending"] == 2
    table = upsync(
        "consumers", "create", "tables", "--kind", "table", "--schema", "stripe_cli",
        "--deliver-policy", "new", "--json", env=ready,
    )  # fmt: skip
    assert json.loads(table.stdout)["metadata"] == {"schema": "stripe_cli"}
    listed = json.loads(upsync("consumers", "list", "--json", env=ready).stdout)["consumers"]
    assert [(c["name"], c["kind"], c["num_pending"]) for c in listed] == [
        ("billing", "http", 2),
        ("tables", "table", 0),
    ]

    # one delivery, nacked: with max_deliver=1 it is a dead letter
    consumer = await get_consumer(lib, "billing", schema=schema)
    got = await claim(lib, consumer, 1, schema=schema)
    assert await nack(lib, consumer, [m.ack_token for m in got.messages], schema=schema) == 1
    dead = json.loads(upsync("consumers", "dead-letters", "billing", "--json", env=ready).stdout)
    assert [d["record"]["upstream_id"] for d in dead["dead_letters"]] == ["sub_1"]
    shown = json.loads(upsync("consumers", "show", "billing", "--json", env=ready).stdout)
    assert (shown["num_pending"], shown["num_dead"]) == (1, 1)
    replay = upsync("consumers", "dead-letters", "billing", "--replay", env=ready)
    assert "Replayed 1 dead letter(s)" in replay.stdout
    assert (await info(lib, consumer, schema=schema)).num_pending == 2

    table_consumer = await get_consumer(lib, "tables", schema=schema)
    rewound = upsync("consumers", "rewind", "tables", "--to", "0", env=ready)
    assert "3 message(s) queued" in rewound.stdout, rewound.stderr
    assert (await info(lib, table_consumer, schema=schema)).num_pending == 3
    assert "consumer 'nope' not found" in one_error_line(
        upsync("consumers", "show", "nope", env=ready)
    )
    bad = upsync("consumers", "create", "x", "--collection", "stripe:nothing", env=ready)
    assert "unknown Stripe collection" in one_error_line(bad)


async def test_tail_prints_records_as_json_lines_and_acks_them(
    upsync: Run,
    ready: dict[str, str],
    lib: AConn,
    schema: str,
) -> None:
    made = upsync("consumers", "create", "watch", "--collection", "stripe:subscription", env=ready)
    assert made.returncode == 0, made.stderr
    await write_subscriptions(lib, schema, ["sub_a", "sub_b", "sub_c"])
    tailed = upsync("tail", "watch", "--max", "2", env=ready, timeout=60)
    assert tailed.returncode == 0, tailed.stderr
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert [r["upstream_id"] for r in lines] == ["sub_a", "sub_b"]
    assert lines[0]["collection_id"] == "stripe:subscription" and lines[0]["data"]["id"] == "sub_a"
    counts = await info(lib, await get_consumer(lib, "watch", schema=schema), schema=schema)
    assert (counts.num_pending, counts.num_ack_pending) == (1, 0)  # two acked, one left
    assert "not found" in one_error_line(upsync("tail", "nobody", "--max", "1", env=ready))
    upsync("consumers", "create", "tables", "--kind", "table", env=ready)
    managed = one_error_line(upsync("tail", "tables", "--max", "1", env=ready))
    assert "run by `upsync server`" in managed
