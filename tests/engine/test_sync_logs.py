"""The server log tells a person what a sync is doing, at info level (issue 16, item 6)."""

from __future__ import annotations

import logging

import pytest

from tests.engine import test_engine
from tests.engine.test_engine import CUSTOMERS, Up, eventually

standin = test_engine.standin  # the same stand-in and running engine as the engine suite
up = test_engine.up


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


async def test_a_sync_logs_its_start_backfill_going_live_and_stop(
    up: Up, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="upsync")
    sync = await up.create_sync()
    name = f"sync 'acme' ({sync['id']})"

    async def live() -> bool:
        return any("sync 'acme': live: following Stripe events" in m for m in _lines(caplog))

    await eventually(live)
    lines = _lines(caplog)
    assert f"{name} started: stripe:customer" in lines
    assert "sync 'acme': backfill of stripe:customer started" in lines
    done = [m for m in lines if m.startswith("sync 'acme': backfill of stripe:customer complete")]
    assert len(done) == 1 and f": {CUSTOMERS} objects in " in done[0]
    assert any(m.startswith("sync 'acme': initial backfill complete") for m in lines)
    order = [
        next(i for i, m in enumerate(lines) if needle in m)
        for needle in ("started: stripe:customer", "backfill of", "complete", "live:")
    ]
    assert order == sorted(order)

    await up.api.patch(f"/v1/syncs/{sync['id']}", json={"status": "disabled"})
    up.engine.syncs.refresh() if up.engine.syncs else None

    async def stopped() -> bool:
        return f"{name} stopped" in _lines(caplog)

    await eventually(stopped)
