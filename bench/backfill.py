"""Backfill speed under a request budget: objects/s as a fraction of the budget's ceiling.

A seeded stand-in (in its own process, so RSS below is upsync's alone) holds about
``--objects`` objects; a sync backfills every collection into a fresh stream under a budget of
``--rate`` requests/s. The ceiling is ``rate × 100`` objects/s (full pages at the full budget);
partial last pages, empty slices and nested-list pages all count against it.

Usage: python bench/backfill.py [--objects 100000] [--rate 25] [--dsn DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from upsync.embedded import start_embedded
from upsync.sources.port import PostgresPort
from upsync.sources.stripe.client import StripeHTTP
from upsync.sources.stripe.collections import COLLECTIONS
from upsync.sources.stripe.ratelimit import RateLimiter
from upsync.sources.stripe.source import StripeSource
from upsync.stream.catalog import create_credential, create_stream, create_sync
from upsync.stream.migrations import migrate

API_KEY = "sk_test_bench"
#: objects the stand-in's generator makes per customer history (measured: ~11)
OBJECTS_PER_CUSTOMER = 11


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_standin(customers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "upsync.testing.stripe", "--port", str(port)]
    cmd += ["--customers", str(customers), "--rate-limit", "0", "--days", "365"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:  # the stand-in generates its data before it listens
        try:
            httpx.get(url + "/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"})
            return proc, url
        except httpx.TransportError:
            if proc.poll() is not None:
                raise SystemExit("the stand-in exited before serving") from None
            time.sleep(0.2)
    raise SystemExit("the stand-in did not start within 10 minutes")


async def run(dsn: str, url: str, rate: float) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    async with AsyncConnectionPool(dsn, min_size=2, max_size=10, open=False) as pool:
        async with pool.connection() as conn:
            await migrate(conn, schema=schema)
            stream = await create_stream(conn, "bench", schema=schema)
            cred = await create_credential(
                conn, provider="stripe", kind="stripe_key", secret=API_KEY, schema=schema
            )
            sync = await create_sync(
                conn,
                stream_id=stream.id,
                provider="stripe",
                name="bench",
                collection_ids=[c.collection_id for c in COLLECTIONS.values()],
                credential_id=cred.id,
                schema=schema,
            )
        http = StripeHTTP(API_KEY, base_url=url, limiter=RateLimiter(rate))
        source = StripeSource(
            http, PostgresPort(pool, sync, schema=schema), sync.collection_ids, parallel=16
        )
        started = time.perf_counter()
        await source.start()
        await source.backfill()
        elapsed = time.perf_counter() - started
        await http.aclose()
        objects = sum(p.count for p in source.status.backfill.values())
        async with pool.connection() as conn:
            await conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return {
        "objects": objects,
        "elapsed": elapsed,
        "requests": http.requests,
        "nested": http.nested_requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=25.0, help="request budget per second")
    parser.add_argument(
        "--dsn", default=os.environ.get("UPSYNC_BENCH_DSN") or os.environ.get("UPSYNC_TEST_DSN")
    )
    args = parser.parse_args()
    dsn = args.dsn or start_embedded().dsn
    with psycopg.connect(dsn) as conn:
        conn.execute("select 1")
    customers = max(1, args.objects // OBJECTS_PER_CUSTOMER)
    print(
        f"generating ~{args.objects} objects ({customers} customers) in the stand-in…", flush=True
    )
    proc, url = start_standin(customers)
    try:
        result = asyncio.run(run(dsn, url, args.rate))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    per_s = result["objects"] / result["elapsed"]
    ceiling = args.rate * 100
    req_rate = result["requests"] / result["elapsed"]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"objects          {result['objects']}")
    print(f"elapsed          {result['elapsed']:.1f} s")
    print(f"requests         {result['requests']} ({req_rate:.1f}/s of a {args.rate:g}/s budget)")
    print(f"objects/s        {per_s:,.0f} (ceiling {ceiling:,.0f})")
    list_requests = result["requests"] - result["nested"]
    fill = result["objects"] / (list_requests * 100)
    print(f"nested-list requests {result['nested']} (pages of truncated invoice lines / items)")
    print(f"list page fill   {fill:.3f} (objects per list request / 100)")
    print(
        f"backfill_vs_budget_ceiling={per_s / ceiling:.3f} budget_used={req_rate / args.rate:.3f} "
        f"list_page_fill={fill:.3f} objects={result['objects']} peak_rss_mb={rss_mb:.0f}"
    )


if __name__ == "__main__":
    main()
