"""``upsync status``: syncs with their state and progress, consumers with their backlog."""

from __future__ import annotations

import click

from upsync import ops
from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.consumers_cmd import state_text
from upsync.cli.database import describe_database, run_with_connection
from upsync.cli.output import echo_json, json_option, print_table
from upsync.ops.progress import events_through, progress_text


@main.command()
@json_option
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """One view of everything: syncs (state, backfill, events) and consumers (pending, dead)."""
    schema = ctx.settings.schema
    found = run_with_connection(ctx.settings, lambda conn: ops.overview(conn, schema=schema))
    if as_json:
        echo_json(
            {
                "database": describe_database(ctx.settings),
                "schema": schema,
                "syncs": [v.to_dict() for v in found.syncs],
                "consumers": [v.to_dict() for v in found.consumers],
            }
        )
        return
    click.echo(f"Database: {describe_database(ctx.settings)} (schema {schema!r})")
    print_table(
        "Syncs",
        ["name", "id", "state", "backfill", "events through"],
        [
            (v.sync.name, v.sync.id, v.state.text, progress_text(v.sync), events_through(v.sync))
            for v in found.syncs
        ],
        empty="No syncs: `upsync syncs create stripe --api-key-env STRIPE_KEY …`.",
    )
    print_table(
        "Consumers",
        ["name", "kind", "state", "pending", "ack pending", "dead"],
        [
            (
                v.consumer.name,
                v.consumer.kind,
                state_text(v),
                v.info.num_pending,
                v.info.num_ack_pending,
                v.info.num_dead,
            )
            for v in found.consumers
        ],
        empty="No consumers: `upsync consumers create NAME`.",
    )
