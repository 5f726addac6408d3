"""Failures show where a user looks first (issue 16, item 6): `upsync status`, `syncs show`,
the consumers' HTTP shapes and `/metrics` — also from a process that does not run the sync.

Before, a sync with a bad key showed "active / not started" everywhere but the engine's own
``GET /v1/syncs/{id}``, and a failing webhook consumer only a growing ``pending``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.engine import test_engine
from tests.engine.test_engine import Up, _sample, eventually
from upsync import ops

standin = test_engine.standin  # the same stand-in and running engine as the engine suite
up = test_engine.up

BAD_KEY = "sk_live_" + "x" * 24  # the stand-in accepts test keys only: every request is a 401


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def _cli(pg_dsn: str, schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "upsync"
    env = {**os.environ, "UPSYNC_DATABASE_URL": pg_dsn, "UPSYNC_SCHEMA": schema}
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, env=env, timeout=120
    )


async def test_a_failing_sync_and_webhook_consumer_show_in_status_show_and_metrics(
    up: Up, pg_dsn: str, schema: str
) -> None:
    await up.create_sync()  # a good sync beside the bad one
    body = {
        "provider": "stripe",
        "stream_id": "main",
        "name": "bad-key",
        "collection_ids": ["stripe:customer"],
        "credential": {"properties": {"kind": "stripe_key", "secret": BAD_KEY}},
    }
    bad = await up.api.post("/v1/syncs", json=body)
    assert bad.status_code == 200, bad.text
    hook = await up.api.post(
        "/v1/webhook-consumers",
        json={"stream_id": "main", "name": "hook", "url": f"http://127.0.0.1:{_closed_port()}/"},
    )
    assert hook.status_code == 200, hook.text

    async def seen_from_elsewhere() -> bool:
        # what another process sees: the stored state, no live status
        found = await ops.overview(up.db, schema=schema)
        states = {v.sync.name: v.state.state for v in found.syncs}
        hooks = {v.consumer.name: v.state for v in found.consumers}
        return states == {"acme": "live", "bad-key": "failing"} and hooks["hook"] == "failing"

    await eventually(seen_from_elsewhere, timeout=30)

    status = _cli(pg_dsn, schema, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    syncs = {s["name"]: s["state"] for s in report["syncs"]}
    assert syncs["bad-key"]["state"] == "failing" and syncs["bad-key"]["error"]
    assert BAD_KEY not in status.stdout
    consumers = {c["name"]: c for c in report["consumers"]}
    assert consumers["hook"]["webhook"]["last_error"]

    shown = _cli(pg_dsn, schema, "syncs", "show", "bad-key")
    assert shown.returncode == 0 and "failing" in shown.stdout, shown.stderr
    table = _cli(pg_dsn, schema, "status")
    assert "failing" in table.stdout and "hook" in table.stdout

    got = (await up.api.get(f"/v1/consumers/{hook.json()['id']}")).json()
    assert got["webhook"]["state"] == "failing"
    metrics = (await up.api.get("/metrics")).text
    assert _sample(metrics, "upsync_sync_state", sync="bad-key", state="failing") == 1
    assert _sample(metrics, "upsync_sync_state", sync="acme", state="live") == 1
    assert _sample(metrics, "upsync_consumer_failing", consumer="hook") == 1
