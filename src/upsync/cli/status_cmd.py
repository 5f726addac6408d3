"""``upsync status``: syncs with their backfill progress, consumers with their backlog."""

from __future__ import annotations

from typing import Any

import click

from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.consumers_cmd import consumers_with_info
from upsync.cli.database import AConn, describe_database, run_with_connection
from upsync.cli.output import echo_json, json_option, print_table
from upsync.cli.progress import backfill_progress, events_through, progress_text
from upsync.stream.catalog import list_syncs
from upsync.stream.models import Consumer, ConsumerInfo, Sync

Snapshot = tuple[list[Sync], list[tuple[Consumer, ConsumerInfo]]]


@main.command()
@json_option
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """One view of everything: syncs (backfill, events) and consumers (pending, dead)."""
    schema = ctx.settings.schema

    async def work(conn: AConn) -> Snapshot:
        return await list_syncs(conn, schema=schema), await consumers_with_info(conn, ctx)

    found, consumers = run_with_connection(ctx.settings, work)
    if as_json:
        echo_json(
            {
                "database": describe_database(ctx.settings),
                "schema": schema,
                "syncs": [_sync_status(s) for s in found],
                "consumers": [_consumer_status(c, i) for c, i in consumers],
            }
        )
        return
    click.echo(f"Database: {describe_database(ctx.settings)} (schema {schema!r})")
    print_table(
        "Syncs",
        ["name", "id", "status", "backfill", "events through"],
        [(s.name, s.id, s.status, progress_text(s), events_through(s)) for s in found],
        empty="No syncs: `upsync syncs create stripe --api-key-env STRIPE_KEY …`.",
    )
    print_table(
        "Consumers",
        ["name", "kind", "pending", "ack pending", "dead"],
        [(c.name, c.kind, i.num_pending, i.num_ack_pending, i.num_dead) for c, i in consumers],
        empty="No consumers: `upsync consumers create NAME`.",
    )


def _sync_status(sync: Sync) -> dict[str, Any]:
    done = sync.initial_backfill_completed_at
    return {
        "id": sync.id,
        "name": sync.name,
        "provider": sync.provider,
        "external_id": sync.external_id,
        "status": sync.status,
        "backfill": backfill_progress(sync),
        "backfill_completed_at": None if done is None else done.isoformat(),
        "events_through": events_through(sync),
    }


def _consumer_status(consumer: Consumer, counts: ConsumerInfo) -> dict[str, Any]:
    return {
        "id": consumer.id,
        "name": consumer.name,
        "kind": consumer.kind,
        "stream_id": consumer.stream_id,
        "filters": consumer.filters.to_dict(),
        **counts.to_dict(),
    }
