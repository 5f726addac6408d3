"""``upsync consumers create|list|show|rewind|dead-letters|delete``."""

from __future__ import annotations

import os

import click

from upsync import ops
from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import AConn, run_with_connection
from upsync.cli.output import echo_json, json_option, print_fields, print_table
from upsync.errors import ConfigurationError
from upsync.stream.models import CONSUMER_DEFAULTS, DELIVER_POLICIES, DeadLetter


@main.group()
def consumers() -> None:
    """Consumers: named, filtered views of a stream with at-least-once delivery."""


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
    type=click.Choice(["http", "table", "webhook"]),
    default="http",
    show_default=True,
    help="http: pulled by workers (API, `upsync tail`); table: `upsync server` writes typed "
    "tables; webhook: `upsync server` pushes signed batches to --url.",
)
@click.option("--schema", "target_schema", help="kind=table: schema of the tables [stripe].")
@click.option("--url", help="kind=webhook: the http(s) URL that receives signed batches.")
@click.option(
    "--secret-env",
    metavar="VAR",
    help="kind=webhook: environment variable holding the signing secret [default: a random "
    "secret, printed once].",
)
@click.option(
    "--max-deliver",
    type=int,
    default=CONSUMER_DEFAULTS.max_deliver,
    show_default=True,
    help="Attempts before a record becomes a dead letter; -1: unlimited (a record that always "
    "fails then cycles forever).",
)
@click.option("--ack-wait-ms", type=int, default=CONSUMER_DEFAULTS.ack_wait_ms, show_default=True)
@click.option(
    "--max-ack-pending", type=int, default=CONSUMER_DEFAULTS.max_ack_pending, show_default=True
)
@click.option(
    "--deliver-policy",
    type=click.Choice(DELIVER_POLICIES),
    default=CONSUMER_DEFAULTS.deliver_policy,
    show_default=True,
    help="all: every record, then changes; new: changes only; last: the newest record, then "
    "changes; 1h: records written in the last hour, then changes.",
)
@click.option(
    "--exist-ok",
    is_flag=True,
    help="Succeed if a consumer of that name exists with the same settings.",
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
    url: str | None,
    secret_env: str | None,
    max_deliver: int,
    ack_wait_ms: int,
    max_ack_pending: int,
    deliver_policy: str,
    exist_ok: bool,
    as_json: bool,
) -> None:
    """Create consumer NAME."""
    if target_schema and kind != "table":
        raise ConfigurationError("--schema applies to --kind table only")
    if (url is not None or secret_env is not None) and kind != "webhook":
        raise ConfigurationError("--url and --secret-env apply to --kind webhook only")
    filters = {}
    if collection_id:
        filters["collection_id"] = collection_id
    if sync_id:
        filters["sync_id"] = sync_id
    new = ops.NewConsumer(
        stream=stream_name,
        name=name,
        kind=kind,
        filters=filters,
        deliver_policy=deliver_policy,
        ack_wait_ms=ack_wait_ms,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
        metadata={"schema": target_schema or "stripe"} if kind == "table" else {},
        url=url if kind == "webhook" else None,
        secret=_env_secret(secret_env) if secret_env else None,
    )
    if kind == "webhook" and url is None:
        raise ConfigurationError("--kind webhook needs --url")
    view = run_with_connection(
        ctx.settings,
        lambda conn: ops.consumers.create_consumer(
            conn, new, exist_ok=exist_ok, schema=ctx.settings.schema
        ),
    )
    if as_json:
        echo_json(view.to_dict())
        return
    consumer, counts = view.consumer, view.info
    verb = "Created" if view.created else "Found existing"
    click.echo(f"{verb} consumer {consumer.name!r} ({consumer.id}), {counts.num_pending} pending.")
    if kind == "table":
        click.echo(
            f"`upsync server` writes its records into tables in schema {new.metadata['schema']!r}."
        )
    elif kind == "webhook":
        click.echo(f"`upsync server` pushes signed batches to {url}.")
        if view.secret is not None and secret_env is None:
            click.echo(f"Signing secret (shown once; give it to the receiver): {view.secret}")
    else:
        click.echo(f"Read it with `upsync tail {consumer.name}` or the HTTP API.")


def _env_secret(variable: str) -> str:
    secret = os.environ.get(variable, "").strip()
    if not secret:
        raise ConfigurationError(f"environment variable {variable} is not set or empty")
    return secret


@consumers.command("list")
@json_option
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Every consumer with its state and pending / ack-pending / dead counts."""
    views = run_with_connection(
        ctx.settings, lambda conn: ops.consumers.list_consumers(conn, schema=ctx.settings.schema)
    )
    if as_json:
        echo_json({"consumers": [v.to_dict() for v in views]})
        return
    print_table(
        "Consumers",
        ["name", "kind", "collection", "state", "pending", "ack pending", "dead"],
        [
            (
                v.consumer.name,
                v.consumer.kind,
                v.consumer.filters.collection_id,
                state_text(v),
                v.info.num_pending,
                v.info.num_ack_pending,
                v.info.num_dead,
            )
            for v in views
        ],
        empty="No consumers yet: `upsync consumers create NAME`.",
    )


def state_text(view: ops.ConsumerView) -> str:
    """One cell for a person: ``ok``, or a webhook's state and last error."""
    hook = view.webhook
    if hook is None or not hook.last_error or view.state == "ok":
        return view.state
    return f"{view.state}: {hook.last_error}"


@consumers.command("show")
@click.argument("name")
@json_option
@pass_ctx
def show(ctx: Context, name: str, as_json: bool) -> None:
    """One consumer (by name or id), its settings, counters and delivery state."""
    view = run_with_connection(
        ctx.settings,
        lambda conn: ops.consumers.show_consumer(conn, name, schema=ctx.settings.schema),
    )
    data = view.to_dict()
    if as_json:
        echo_json(data)
        return
    data.pop("webhook", None)
    print_fields([*data.items(), ("state", state_text(view))])


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

    queued = run_with_connection(
        ctx.settings,
        lambda conn: ops.consumers.rewind(conn, name, after_idx=after_idx, schema=schema),
    )
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
        if replay:
            return [], await ops.consumers.replay(conn, name, schema=schema)
        return await ops.consumers.dead_letters(conn, name, limit=limit, schema=schema), 0

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

    run_with_connection(
        ctx.settings, lambda conn: ops.consumers.delete_consumer(conn, name, schema=schema)
    )
    click.echo(f"Deleted consumer {name!r}.")
