"""``upsync syncs create|list|show|pause|resume|delete``.

An API key is read from the environment variable named by ``--api-key-env``, never from a flag
value (which would land in shell history and ``ps``). It is stored as a credential and shown
as ``****`` everywhere.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from upsync import ops
from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import run_with_connection
from upsync.cli.output import echo_json, json_option, print_fields, print_table, when
from upsync.errors import ConfigurationError
from upsync.ops.progress import progress_text
from upsync.stream.models import Sync


@main.group()
def syncs() -> None:
    """Syncs: one API account (e.g. a Stripe account) copied into a stream."""


@syncs.command("create")
@click.argument("provider", type=click.Choice(["stripe"]))
@click.option(
    "--api-key-env",
    required=True,
    metavar="VAR",
    help="Name of the environment variable holding the API key (the key never goes on the "
    "command line).",
)
@click.option(
    "--collections",
    required=True,
    metavar="LIST",
    help="Comma-separated collections, e.g. customer,subscription (or stripe:customer,…).",
)
@click.option(
    "--webhook-secret-env",
    metavar="VAR",
    help="Name of the environment variable holding the Stripe webhook signing secret "
    "(whsec_…) of the endpoint pointing at /v1/syncs/<id>/webhook.",
)
@click.option("--external-id", help="Your id for this account/tenant (on every record).")
@click.option("--metadata", metavar="JSON", help='A JSON object, e.g. \'{"plan": "gold"}\'.')
@click.option("--name", help="A name for the sync [default: the external id, else 'stripe'].")
@click.option("--stream", "stream_name", default="default", show_default=True, help="Stream name.")
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Requests per second [default: 25 with a test key, 50 live].",
)
@json_option
@pass_ctx
def create(
    ctx: Context,
    provider: str,
    api_key_env: str,
    webhook_secret_env: str | None,
    collections: str,
    external_id: str | None,
    metadata: str | None,
    name: str | None,
    stream_name: str,
    rate_limit: int | None,
    as_json: bool,
) -> None:
    """Create a sync of PROVIDER (stripe); a running `upsync server` starts it within seconds."""
    names = [part.strip() for part in collections.split(",") if part.strip()]
    if not names:
        raise ConfigurationError("--collections: name at least one, e.g. customer,subscription")
    new = ops.NewSync(
        provider=provider,
        stream=stream_name,
        collection_ids=names,
        name=name,
        api_key=_api_key(api_key_env),
        credential_name=f"{api_key_env} ({name or external_id or provider})",
        webhook_secret=_secret(webhook_secret_env, "whsec_") if webhook_secret_env else None,
        external_id=external_id,
        metadata=_metadata(metadata),
        rate_limit=None
        if rate_limit is None
        else {"allowed_requests": rate_limit, "interval": 1, "max_concurrent_requests": 0},
    )
    view = run_with_connection(
        ctx.settings, lambda conn: ops.syncs.create_sync(conn, new, schema=ctx.settings.schema)
    )
    if as_json:
        echo_json(view.to_dict())
        return
    sync = view.sync
    click.echo(f"Created sync {sync.id} ({sync.name}): {', '.join(sync.collection_ids)}")
    click.echo("API key stored as a credential (****). `upsync server` runs the sync.")


def _metadata(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigurationError(f"--metadata: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise ConfigurationError('--metadata: expected a JSON object, e.g. \'{"plan": "gold"}\'')
    return value


def _secret(variable: str, prefix: str) -> str:
    if variable.startswith(prefix) or "=" in variable:
        raise ConfigurationError(
            "--webhook-secret-env takes the NAME of an environment variable, not the secret: "
            "export STRIPE_WEBHOOK_SECRET=… then pass --webhook-secret-env STRIPE_WEBHOOK_SECRET"
        )
    secret = os.environ.get(variable, "").strip()
    if not secret:
        raise ConfigurationError(f"environment variable {variable} is not set or empty")
    return secret


def _api_key(variable: str) -> str:
    if variable.startswith(("sk_", "rk_")) or "=" in variable:
        # the person passed the key itself: refuse without echoing it
        raise ConfigurationError(
            "--api-key-env takes the NAME of an environment variable, not the key: "
            "export STRIPE_KEY=… then pass --api-key-env STRIPE_KEY"
        )
    key = os.environ.get(variable, "").strip()
    if not key:
        raise ConfigurationError(
            f"environment variable {variable} is not set or empty: export {variable}=<your "
            "Stripe key> (a restricted key with read access is enough), then run this again"
        )
    return key


@syncs.command("list")
@json_option
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Every sync, oldest first, with its state."""
    found = run_with_connection(
        ctx.settings, lambda conn: ops.overview(conn, schema=ctx.settings.schema)
    ).syncs
    if as_json:
        echo_json({"syncs": [v.to_dict() for v in found]})
        return
    print_table(
        "Syncs",
        ["id", "name", "external id", "state", "collections", "backfill"],
        [
            (
                v.sync.id,
                v.sync.name,
                v.sync.external_id,
                v.state.text,
                ", ".join(v.sync.collection_ids),
                progress_text(v.sync),
            )
            for v in found
        ],
        empty="No syncs yet: `upsync syncs create stripe --api-key-env STRIPE_KEY …`.",
    )


@syncs.command("show")
@click.argument("sync_id", metavar="ID_OR_NAME")
@json_option
@pass_ctx
def show(ctx: Context, sync_id: str, as_json: bool) -> None:
    """One sync (by id or name), its state and backfill progress per collection."""
    view = run_with_connection(
        ctx.settings, lambda conn: ops.syncs.show_sync(conn, sync_id, schema=ctx.settings.schema)
    )
    sync, data = view.sync, view.to_dict()
    if as_json:
        echo_json(data)
        return
    print_fields(
        [
            *((key, data[key]) for key in ("id", "name", "provider", "external_id", "status")),
            ("state", view.state.state),
            ("last error", view.state.error),
            ("collections", ", ".join(sync.collection_ids)),
            ("stream_id", sync.stream_id),
            ("metadata", data["metadata"]),
            ("api key", "****" if view.credential else None),
            ("rate limit", data["rate_limit"] or "default"),
            ("backfill done", when(sync.initial_backfill_completed_at)),
            ("events through", data["events_through"]),
        ]
    )
    print_table(
        None,
        ["collection", "backfilled", "done"],
        [(cid, p["count"], "yes" if p["done"] else "no") for cid, p in data["backfill"].items()],
        empty="",
    )


def _set_status(ctx: Context, sync_id: str, status: str) -> Sync:
    return run_with_connection(
        ctx.settings,
        lambda conn: ops.syncs.set_status(conn, sync_id, status, schema=ctx.settings.schema),
    )


@syncs.command("pause")
@click.argument("sync_id", metavar="ID_OR_NAME")
@pass_ctx
def pause(ctx: Context, sync_id: str) -> None:
    """Stop syncing (a running server stops it within seconds; progress is kept)."""
    sync = _set_status(ctx, sync_id, "disabled")
    click.echo(f"Paused sync {sync.id} ({sync.name}).")


@syncs.command("resume")
@click.argument("sync_id", metavar="ID_OR_NAME")
@pass_ctx
def resume(ctx: Context, sync_id: str) -> None:
    """Resume a paused sync where it stopped."""
    sync = _set_status(ctx, sync_id, "active")
    click.echo(f"Resumed sync {sync.id} ({sync.name}).")


@syncs.command("delete")
@click.argument("sync_id", metavar="ID_OR_NAME")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def delete(ctx: Context, sync_id: str, yes: bool) -> None:
    """Delete a sync and the API key stored for it. Its records stay in the stream."""
    if not yes:
        click.confirm(f"Delete sync {sync_id} (its cursors are lost)?", abort=True, err=True)
    sync = run_with_connection(
        ctx.settings, lambda conn: ops.syncs.delete_sync(conn, sync_id, schema=ctx.settings.schema)
    )
    click.echo(f"Deleted sync {sync.id} ({sync.name}).")
