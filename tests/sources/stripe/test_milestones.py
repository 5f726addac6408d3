"""Backfill progress lines: one per milestone, counted in objects or in time."""

from __future__ import annotations

import logging

import pytest

from tests.sources.stripe.conftest import Upstream, Wired
from tests.sources.stripe.test_source import seed_account
from upsync.sources.stripe.milestones import BackfillLog


def _info(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


async def test_a_backfill_logs_start_milestones_and_completion_per_collection(
    wired: Wired, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="upsync")
    seed_account(upstream, customers=250)  # three pages of customers
    source = wired.make_source(label="sync 'acme'", progress_every=100)
    await source.start()
    await source.backfill()
    lines = _info(caplog)
    assert "sync 'acme': backfill of stripe:customer started" in lines
    progress = [m for m in lines if m.startswith("sync 'acme': backfill of stripe:customer: ")]
    assert 1 <= len(progress) <= 2, progress  # milestones 100 and 200, never one per page
    assert any(
        m.startswith("sync 'acme': backfill of stripe:customer complete: 250 objects in")
        for m in lines
    )
    for collection_id in ("stripe:product", "stripe:price", "stripe:subscription"):
        assert any(
            m.startswith(f"sync 'acme': backfill of {collection_id} complete") for m in lines
        )

    caplog.clear()
    again = wired.make_source(label="sync 'acme'")
    await again.start()
    await again.backfill()  # nothing left to read: no backfill lines at all
    assert not [m for m in _info(caplog) if "backfill" in m]


def test_without_new_milestones_a_line_comes_at_most_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="upsync")
    now = [0.0]
    log = BackfillLog("sync 'slow'", every_objects=1_000_000, every_s=30.0, clock=lambda: now[0])
    log.started("stripe:invoice", 0)
    for second in range(1, 100):
        now[0] = float(second)
        log.progress("stripe:invoice", second * 10)
    progress = [m for m in _info(caplog) if "so far" in m]
    assert len(progress) == 3  # at 30, 60 and 90 s
    assert progress[0] == "sync 'slow': backfill of stripe:invoice: 300 objects so far (10/s)"
