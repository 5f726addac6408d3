"""``upsync consumers create|list|show|rewind|dead-letters|delete``."""

from __future__ import annotations

from typing import Any

import click

from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import AConn, run_with_connection
from upsync.cli.output import echo_json, json_option, print_fields, print_table
from upsync.errors import ConfigurationError, NotFound
from upsync.sources.stripe.collections import collection
from upsync.stream.catalog import get_stream
from upsync.stream.consumers import (
    create_consumer,
    delete_consumer,
    get_consumer,
    list_consumers,
    rewind,
)
from upsync.stream.delivery import info, list_dead_letters, replay_dead_letters
from upsync.stream.models import DELIVER_POLICIES, Consumer, ConsumerInfo, DeadLetter


@main.group()
def consumers() -> None:
    """Consumers: named, filtered views of a stream with at-least-once delivery."""


def consumer_dict(consumer: Consumer, counts: ConsumerInfo) -> dict[str, Any]:
    """A consumer and its counters, as ``--json`` prints them."""
    return {**consumer.to_dict(), **counts.to_dict()}


@consumers.command("create")
@click.argument("name")
@click.option("--stream", "stream_name", default="default", show_default=True, help="Stream name.")
@click.option(
    "--collection",
    "collection_id",
    metavar="ID",
    help="Only this collection, e.g. stripe:subscription [default: all].",
)
@click.option("--sync", "sync_id", metavar="ID", help="Only records of this sync.")
@click.option(
    "--kind",
    type=click.Choice(["http", "table"]),
    default="http",
    show_default=True,
    help="http: pulled by workers (API, `upsync tail`); table: `upsync server` writes typed "
    "tables.",
)
@click.option("--schema", "target_schema", help="kind=table: schema of the tables [stripe].")
@click.option(
    "--max-deliver",
    type=int,
    help="Attempts before a record becomes a dead letter; -1: unlimited "
    "[default: -1 for http, 10 for table: a row Postgres refuses must not cycle forever].",
)
@click.option("--ack-wait-ms", type=int, default=30000, show_default=True)
@click.option("--max-ack-pending", type=int, default=1000, show_default=True)
@click.option(
    "--deliver-policy",
    type=click.Choice(DELIVER_POLICIES),
    default="all",
    show_default=True,
    help="all: every record, then changes; new: changes only; last: the newest record, then "
    "changes; 1h: records written in the last hour, then changes.",
)
@json_option
@pass_ctx
def create(
    ctx: Context,
    name: str,
    stream_name: str,
    collection_id: str | None,
    sync_id: str | None,
    kind: str,
    target_schema: str | None,
    max_deliver: int | None,
    ack_wait_ms: int,
    max_ack_pending: int,
    deliver_policy: str,
    as_json: bool,
) -> None:
    """Create consumer NAME."""
    if target_schema and kind != "table":
        raise ConfigurationError("--schema applies to --kind table only")
    filters = {}
    if collection_id:
        filters["collection_id"] = collection(collection_id).collection_id
    if sync_id:
        filters["sync_id"] = sync_id
    metadata = {"schema": target_schema or "stripe"} if kind == "table" else {}
    schema = ctx.settings.schema

    async def work(conn: AConn) -> tuple[Consumer, ConsumerInfo]:
        try:
            stream = await get_stream(conn, stream_name, schema=schema)
        except NotFound:
            hint = "run `upsync init`" if stream_name == "default" else "check --stream"
            raise NotFound(f"stream {stream_name!r} not found: {hint}") from None
        consumer = await create_consumer(
            conn,
            stream_id=stream.id,
            name=name,
            filters=filters,
            deliver_policy=deliver_policy,
            ack_wait_ms=ack_wait_ms,
            max_deliver=max_deliver if max_deliver is not None else (10 if kind == "table" else -1),
            max_ack_pending=max_ack_pending,
            metadata=metadata,
            kind=kind,
            schema=schema,
        )
        return consumer, await info(conn, consumer, schema=schema)

    consumer, counts = run_with_connection(ctx.settings, work)
    if as_json:
        echo_json(consumer_dict(consumer, counts))
        return
    click.echo(f"Created consumer {consumer.name!r} ({consumer.id}), {counts.num_pending} pending.")
    if kind == "table":
        click.echo(
            f"`upsync server` writes its records into tables in schema {metadata['schema']!r}."
        )
    else:
        click.echo(f"Read it with `upsync tail {consumer.name}` or the HTTP API.")


@consumers.command("list")
@json_option
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Every consumer with its pending / ack-pending / dead counts."""
    rows = run_with_connection(ctx.settings, lambda conn: consumers_with_info(conn, ctx))
    if as_json:
        echo_json({"consumers": [consumer_dict(c, i) for c, i in rows]})
        return
    print_table(
        "Consumers",
        ["name", "kind", "collection", "pending", "ack pending", "dead"],
        [
            (
                c.name,
                c.kind,
                c.filters.collection_id,
                i.num_pending,
                i.num_ack_pending,
                i.num_dead,
            )
            for c, i in rows
        ],
        empty="No consumers yet: `upsync consumers create NAME`.",
    )


async def consumers_with_info(conn: AConn, ctx: Context) -> list[tuple[Consumer, ConsumerInfo]]:
    """Every consumer and its counters, now."""
    schema = ctx.settings.schema
    found = await list_consumers(conn, schema=schema)
    return [(c, await info(conn, c, schema=schema)) for c in found]


@consumers.command("show")
@click.argument("name")
@json_option
@pass_ctx
def show(ctx: Context, name: str, as_json: bool) -> None:
    """One consumer (by name or id), its settings and counters."""
    schema = ctx.settings.schema

    async def work(conn: AConn) -> tuple[Consumer, ConsumerInfo]:
        consumer = await get_consumer(conn, name, schema=schema)
        return consumer, await info(conn, consumer, schema=schema)

    consumer, counts = run_with_connection(ctx.settings, work)
    data = consumer_dict(consumer, counts)
    if as_json:
        echo_json(data)
        return
    print_fields(data.items())


@consumers.command("rewind")
@click.argument("name")
@click.option(
    "--to",
    "after_idx",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="IDX",
    help="Re-deliver records with updated_idx above IDX (0: everything).",
)
@pass_ctx
def rewind_(ctx: Context, name: str, after_idx: int) -> None:
    """Re-deliver the consumer's records (dead letters among them are revived)."""
    schema = ctx.settings.schema

    async def work(conn: AConn) -> int:
        consumer = await get_consumer(conn, name, schema=schema)
        return await rewind(conn, consumer, after_idx=after_idx, schema=schema)

    queued = run_with_connection(ctx.settings, work)
    click.echo(f"Rewound {name!r}: {queued} message(s) queued for delivery.")


@consumers.command("dead-letters")
@click.argument("name")
@click.option("--replay", is_flag=True, help="Make every dead letter pending again.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@pass_ctx
def dead_letters(ctx: Context, name: str, replay: bool, limit: int, as_json: bool) -> None:
    """List the consumer's dead letters (records that used up --max-deliver), or replay them."""
    schema = ctx.settings.schema

    async def work(conn: AConn) -> tuple[list[DeadLetter], int]:
        consumer = await get_consumer(conn, name, schema=schema)
        if replay:
            return [], await replay_dead_letters(conn, consumer, schema=schema)
        return await list_dead_letters(conn, consumer, limit=limit, schema=schema), 0

    found, replayed = run_with_connection(ctx.settings, work)
    if replay:
        if as_json:
            echo_json({"replayed": replayed})
        else:
            click.echo(f"Replayed {replayed} dead letter(s) of {name!r}: pending again.")
        return
    if as_json:
        echo_json({"dead_letters": [d.to_dict() for d in found]})
        return
    print_table(
        f"Dead letters of {name}",
        ["record id", "collection", "upstream id", "attempts", "dead since"],
        [
            (d.record.id, d.record.collection_id, d.record.upstream_id, d.deliver_count, d.dead_at)
            for d in found
        ],
        empty=f"No dead letters for {name!r}.",
    )


@consumers.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def delete(ctx: Context, name: str, yes: bool) -> None:
    """Delete a consumer and everything it still owed (pending, in flight, dead)."""
    if not yes:
        click.confirm(f"Delete consumer {name!r}?", abort=True, err=True)
    schema = ctx.settings.schema

    async def work(conn: AConn) -> None:
        consumer = await get_consumer(conn, name, schema=schema)
        await delete_consumer(conn, consumer, schema=schema)

    run_with_connection(ctx.settings, work)
    click.echo(f"Deleted consumer {name!r}.")
