"""One sync the runner cannot start never keeps the others from running (issue 16, item 2).

The bad syncs are written straight into the catalog: the API refuses them at creation, but a
catalog written by an older version (or by hand) can still hold one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine import test_engine
from tests.engine.test_engine import Up, eventually
from upsync.stream.catalog import create_credential, create_sync, list_streams, update_sync

standin = test_engine.standin  # the same stand-in and running engine as the engine suite
up = test_engine.up


async def _bad_sync(up: Up, **fields: Any) -> str:
    stream = (await up.api.post("/v1/streams", json={"name": "legacy"})).json()
    cred = await create_credential(
        up.db, provider="stripe", kind="stripe_key", secret=up.standin.api_key, schema=up.schema
    )
    sync = await create_sync(
        up.db,
        stream_id=stream["id"],
        name="broken",
        credential_id=cred.id,
        schema=up.schema,
        **{"provider": "stripe", "collection_ids": ["stripe:customer"], **fields},
    )
    return sync.id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"collection_ids": ["stripe:users"]}, "unknown Stripe collection"),
        ({"provider": "hubspot", "collection_ids": ["hubspot:contact"]}, "hubspot"),
    ],
    ids=["unknown-collection", "unknown-provider"],
)
async def test_a_sync_that_cannot_start_shows_its_error_and_the_others_run(
    up: Up, fields: dict[str, Any], message: str
) -> None:
    bad = await _bad_sync(up, **fields)  # older than the good one: the runner meets it first
    good = await up.create_sync()
    await eventually(up.table_matches_standin)

    async def bad_shows_error() -> bool:
        return bool((await up.sync(bad))["health"]["status"] == "error")

    await eventually(bad_shows_error)
    health = (await up.sync(bad))["health"]
    assert message in health["last_error"]
    assert health["source"] == "engine"

    async def good_is_live() -> bool:
        health = (await up.sync(good["id"]))["health"]
        return bool(health["status"] == "healthy" and health["events"]["last_poll_at"])

    await eventually(good_is_live)
    # the good sync's backfill took several refresh ticks; a configuration error is not
    # something time fixes, so it was reported once and not retried on every tick
    health = (await up.sync(bad))["health"]
    assert health["errors"] == 1 and health["stopped"] is True
    assert len(await list_streams(up.db, schema=up.schema)) == 2


async def test_a_refused_sync_is_retried_once_its_configuration_changes(up: Up) -> None:
    bad = await _bad_sync(up, collection_ids=["stripe:users"])

    async def status_is(status: str) -> bool:
        return bool((await up.sync(bad))["health"]["status"] == status)

    await eventually(lambda: status_is("error"))
    await update_sync(up.db, bad, collection_ids=["stripe:customer"], schema=up.schema)
    up.engine.syncs.refresh() if up.engine.syncs else None
    await eventually(lambda: status_is("healthy"))
    health = (await up.sync(bad))["health"]
    assert health["last_error"] is None
    assert health["backfill"]["collections"]["stripe:customer"]["done"] is True
