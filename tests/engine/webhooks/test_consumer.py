"""Webhook consumers: signed batches POSTed to a real loopback receiver, retried, dead-lettered."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from tests.world import pooled_world
from upsync.engine import webhooks
from upsync.engine.webhooks import (
    Attempt,
    RetryPolicy,
    WebhookConfig,
    create_webhook_consumer,
    list_webhook_dead_letters,
    load_webhook_config,
    run_webhook_consumer,
    sign_payload,
    verify_signature,
    webhook_status,
)
from upsync.errors import ConfigurationError, WebhookSignatureError
from upsync.sources.stripe import signature as stripe_signature
from upsync.stream.consumers import create_consumer
from upsync.stream.delivery import info, replay_dead_letters
from upsync.stream.migrations import migrate
from upsync.stream.models import Consumer, Stream, Sync, UpstreamObject
from upsync.stream.notify import Notifier
from upsync.stream.write import write

SECRET = "upsync_whk_test-secret-0123456789"


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server on 127.0.0.1, bound at once but listening only after :meth:`up`
    (until then connections are refused). Answers with ``respond()`` and queues every hit."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.respond: Callable[[], tuple[int, bytes]] = lambda: (200, b"ok")
        self.hits: asyncio.Queue[Hit] = asyncio.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                status, answer = receiver.respond()
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                hit = Hit({k.lower(): v for k, v in self.headers.items()}, body)
                loop.call_soon_threadsafe(receiver.hits.put_nowait, hit)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/upsync"
        self.thread: threading.Thread | None = None

    def up(self) -> None:
        self.server.server_activate()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,))
        self.thread.start()

    def close(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()

    async def hit(self) -> Hit:
        return await asyncio.wait_for(self.hits.get(), 10)


class FakeClock:
    """Unix time that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    pool: AsyncConnectionPool[Any]
    notifier: Notifier
    schema: str
    stream: Stream
    sync: Sync
    receiver: Receiver
    clock: FakeClock = field(default_factory=FakeClock)
    attempts: asyncio.Queue[Attempt] = field(default_factory=asyncio.Queue)
    tasks: list[tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)

    async def consumer(self, **settings: Any) -> Consumer:
        async with self.pool.connection() as conn:
            consumer, secret = await create_webhook_consumer(
                conn,
                stream_id=self.stream.id,
                name="hook",
                url=self.receiver.url,
                secret=SECRET,
                schema=self.schema,
                **settings,
            )
        assert secret == SECRET
        return consumer

    async def write(self, *ids: str, version: int = 1) -> None:
        objects = [UpstreamObject(i, {"id": i, "object": "customer"}, version) for i in ids]
        async with self.pool.connection() as conn:
            await write(conn, self.sync, "stripe:customer", objects, schema=self.schema)

    def run(self, consumer: Consumer, retry: RetryPolicy, *, step_s: float = 0.0) -> None:
        """Run the consumer; after each attempt the fake clock moves ``step_s`` seconds."""

        def seen(attempt: Attempt) -> None:
            self.clock.now += step_s
            self.attempts.put_nowait(attempt)

        stop = asyncio.Event()
        task = asyncio.create_task(
            run_webhook_consumer(
                self.pool,
                self.notifier,
                consumer,
                stop,
                schema=self.schema,
                retry=retry,
                clock=self.clock,
                rng=random.Random(7),
                on_attempt=seen,
            )
        )
        self.tasks.append((stop, task))

    async def attempt(self) -> Attempt:
        return await asyncio.wait_for(self.attempts.get(), 10)


FAST = RetryPolicy(base_s=0.005, max_s=0.02)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(asyncio.get_running_loop())
    yield r
    r.close()


@pytest.fixture
async def setup(schema_dsn: str, schema: str, receiver: Receiver) -> AsyncIterator[Setup]:
    async with pooled_world(
        schema_dsn, schema, stream="s", collection_ids=["stripe:customer"], external_id="org_1"
    ) as (pool, world):
        notifier = Notifier(schema_dsn, schema=schema)
        await notifier.start()
        s = Setup(pool, notifier, schema, world.stream, world.sync, receiver)
        try:
            yield s
        finally:
            for stop, task in s.tasks:
                stop.set()
                await task
            await notifier.close()


@pytest.mark.smoke
async def test_batches_are_posted_signed_and_acked(setup: Setup) -> None:
    """A 2xx acks the batch; the body is Sequin-shaped records and the signature verifies."""
    setup.receiver.up()
    consumer = await setup.consumer()
    await setup.write("cus_1", "cus_2", "cus_3")
    setup.run(consumer, FAST)
    hit = await setup.receiver.hit()
    attempt = await setup.attempt()
    assert attempt.ok and attempt.acked == 3
    assert verify_signature(hit.body, hit.headers["upsync-signature"], SECRET, setup.clock())
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["upsync-delivery"] == attempt.delivery_id
    records = [item["record"] for item in orjson.loads(hit.body)["data"]]
    assert [r["upstream_id"] for r in records] == ["cus_1", "cus_2", "cus_3"]
    assert records[0]["collection_id"] == "stripe:customer"
    assert records[0]["sync"]["external_id"] == "org_1"
    async with setup.pool.connection() as conn:
        counts = await info(conn, consumer, schema=setup.schema)
        status = await webhook_status(conn, consumer, schema=setup.schema)
    assert (counts.num_pending, counts.num_ack_pending, counts.num_dead) == (0, 0, 0)
    assert status.state == "ok" and status.delivered == 3 and status.attempts == 0


async def test_a_receiver_that_is_down_gets_the_batch_once_it_is_up(setup: Setup) -> None:
    """Refused connections are retried with backoff and show in the status meanwhile."""
    consumer = await setup.consumer()
    await setup.write("cus_1", "cus_2")
    setup.run(consumer, FAST)
    first, second = await setup.attempt(), await setup.attempt()
    assert not first.ok and not second.ok and first.retry_in_s is not None
    assert (first.failures, second.failures) == (1, 2)
    assert first.error is not None and "ConnectError" in first.error
    async with setup.pool.connection() as conn:
        failing = await webhook_status(conn, consumer, schema=setup.schema)
    assert failing.state == "failing" and failing.attempts >= 2
    assert failing.failing_since is not None and failing.last_error == first.error
    setup.receiver.up()
    while not (attempt := await setup.attempt()).ok:
        pass
    assert attempt.acked == 2
    hit = await setup.receiver.hit()
    assert {r["record"]["upstream_id"] for r in orjson.loads(hit.body)["data"]} == {
        "cus_1",
        "cus_2",
    }
    async with setup.pool.connection() as conn:
        status = await webhook_status(conn, consumer, schema=setup.schema)
        counts = await info(conn, consumer, schema=setup.schema)
    assert status.state == "ok" and status.failing_since is None and status.delivered == 2
    assert counts.num_pending == counts.num_ack_pending == counts.num_dead == 0


async def test_failing_past_the_horizon_dead_letters_with_the_reason(setup: Setup) -> None:
    """A 500 forever: retried until the horizon, then dead letters that say why; a replay
    starts a fresh horizon and delivers."""
    setup.receiver.respond = lambda: (500, b"boom: database is down")
    setup.receiver.up()
    consumer = await setup.consumer()
    await setup.write("cus_1", "cus_2")
    setup.run(consumer, RetryPolicy(base_s=0.005, max_s=0.02, horizon_s=3), step_s=1)
    reports = [await setup.attempt() for _ in range(4)]
    assert [r.dead for r in reports] == [0, 0, 0, 2]
    hits = [await setup.receiver.hit() for _ in range(4)]
    assert len({h.headers["upsync-delivery"] for h in hits}) == 1  # same versions, same id
    async with setup.pool.connection() as conn:
        dead = await list_webhook_dead_letters(conn, consumer, schema=setup.schema)
        status = await webhook_status(conn, consumer, schema=setup.schema)
        counts = await info(conn, consumer, schema=setup.schema)
    assert sorted(d.dead_letter.record.upstream_id for d in dead) == ["cus_1", "cus_2"]
    assert all(d.reason and "HTTP 500" in d.reason and "boom" in d.reason for d in dead)
    assert [d.attempts for d in dead] == [4, 4]
    assert (counts.num_pending, counts.num_dead) == (0, 2)
    assert status.state == "failing" and status.attempts == 4 and status.dead_lettered == 2
    assert status.last_error is not None and "HTTP 500" in status.last_error

    setup.receiver.respond = lambda: (204, b"")
    async with setup.pool.connection() as conn:
        assert await replay_dead_letters(conn, consumer, schema=setup.schema) == 2
    attempt = await setup.attempt()
    assert attempt.ok and attempt.acked == 2


async def test_the_secret_never_shows_in_logs_errors_or_metadata(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """Even a receiver that echoes the secret back gets it masked in errors and logs."""
    caplog.set_level(logging.DEBUG)
    setup.receiver.respond = lambda: (401, f"bad secret {SECRET}".encode())
    setup.receiver.up()
    consumer = await setup.consumer()
    await setup.write("cus_1")
    setup.run(consumer, RetryPolicy(base_s=0.005, max_s=0.02, horizon_s=1), step_s=1)
    reports = [await setup.attempt() for _ in range(2)]
    assert reports[-1].dead == 1
    async with setup.pool.connection() as conn:
        status = await webhook_status(conn, consumer, schema=setup.schema)
        dead = await list_webhook_dead_letters(conn, consumer, schema=setup.schema)
        config = await load_webhook_config(conn, consumer, schema=setup.schema)
    shown = [
        caplog.text,
        str(status.to_dict()),
        str([d.to_dict() for d in dead]),
        str(consumer.to_dict()),
        repr(config),
        *(r.error or "" for r in reports),
    ]
    assert "HTTP 401" in caplog.text
    assert not [text for text in shown if SECRET in text]
    assert config.secret == SECRET


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:8000/x", "http://", ""],
    ids=["ftp", "file", "no-scheme", "no-host", "empty"],
)
async def test_non_http_urls_are_refused(setup: Setup, url: str) -> None:
    async with setup.pool.connection() as conn:
        with pytest.raises(ConfigurationError, match=r"metadata\.url"):
            await create_webhook_consumer(
                conn, stream_id=setup.stream.id, name="x", url=url, schema=setup.schema
            )


async def test_a_secret_in_metadata_is_refused_without_being_echoed(setup: Setup) -> None:
    async with setup.pool.connection() as conn:
        consumer = await create_consumer(
            conn,
            stream_id=setup.stream.id,
            name="inline",
            kind="webhook",
            metadata={"url": setup.receiver.url, "secret": SECRET},
            schema=setup.schema,
        )
        with pytest.raises(ConfigurationError, match=r"metadata\.secret") as caught:
            await load_webhook_config(conn, consumer, schema=setup.schema)
    assert SECRET not in str(caught.value)


async def test_secret_env_names_an_environment_variable(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = {"url": setup.receiver.url, "secret_env": "UPSYNC_TEST_HOOK_SECRET"}
    async with setup.pool.connection() as conn:
        consumer = await create_consumer(
            conn,
            stream_id=setup.stream.id,
            name="env",
            kind="webhook",
            metadata=meta,
            schema=setup.schema,
        )
        with pytest.raises(ConfigurationError, match="UPSYNC_TEST_HOOK_SECRET"):
            await load_webhook_config(conn, consumer, schema=setup.schema)
        monkeypatch.setenv("UPSYNC_TEST_HOOK_SECRET", SECRET)
        config = await load_webhook_config(conn, consumer, schema=setup.schema)
    assert config == WebhookConfig(setup.receiver.url, SECRET, 100)


def test_signatures_verify_and_tampering_is_refused() -> None:
    body = b'{"data":[]}'
    header = sign_payload(body, SECRET, 1_700_000_000)
    assert verify_signature(body, header, SECRET, 1_700_000_100) == 1_700_000_000
    refused = {
        "tampered body": (b'{"data":[1]}', header, SECRET, 1_700_000_000),
        "wrong secret": (body, header, "other", 1_700_000_000),
        "replayed late": (body, header, SECRET, 1_700_000_301),
        "no v1": (body, "t=1700000000", SECRET, 1_700_000_000),
        "garbage": (body, "nonsense", SECRET, 1_700_000_000),
        "missing": (body, None, SECRET, 1_700_000_000),
    }
    for case, (b, h, s, now) in refused.items():
        with pytest.raises(WebhookSignatureError) as caught:
            verify_signature(b, h, s, now)
        assert SECRET not in str(caught.value), case


def test_backoff_grows_exponentially_with_jitter_up_to_its_cap(rng: random.Random) -> None:
    policy = RetryPolicy(base_s=1, max_s=60, jitter=0.5)
    for failures, full in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (500, 60)]:
        delay = policy.delay(failures, rng)
        assert full / 2 <= delay <= full


def test_deliveries_are_signed_with_the_stripe_intakes_scheme_and_tolerance() -> None:
    """One implementation: a consumer's signature verifies as a Stripe one, and vice versa."""
    body, now = b'{"data":[]}', 1_700_000_000
    assert stripe_signature.verify(body, sign_payload(body, SECRET, now), SECRET, now=now) == now
    assert verify_signature(body, stripe_signature.sign(body, SECRET, now), SECRET, now) == now
    assert webhooks.DEFAULT_TOLERANCE == stripe_signature.DEFAULT_TOLERANCE
    with pytest.raises(WebhookSignatureError, match="missing Upsync-Signature header"):
        verify_signature(body, None, SECRET, now)


async def test_the_webhook_tables_come_with_the_schemas_migrations(
    schema_dsn: str, schema: str
) -> None:
    async with await psycopg.AsyncConnection.connect(schema_dsn, autocommit=True) as conn:
        await migrate(conn, schema=schema)
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name LIKE 'webhook_%%' ORDER BY 1",
            [schema],
        )
        assert [r[0] for r in await cur.fetchall()] == ["webhook_failures", "webhook_status"]
        cur = await conn.execute(
            sql.SQL("SELECT name FROM {} WHERE version = 8").format(
                sql.Identifier(schema, "schema_migrations")
            )
        )
        assert (await cur.fetchone()) == (
            "webhook consumers' delivery status and per-message failures",
        )
