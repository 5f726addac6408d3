"""``upsync syncs create|list|show|pause|resume|delete``.

An API key is read from the environment variable named by ``--api-key-env``, never from a flag
value (which would land in shell history and ``ps``). It is stored as a credential and shown
as ``****`` everywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from typing import Any

import click

from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import AConn, run_with_connection
from upsync.cli.output import echo_json, json_option, print_fields, print_table, when
from upsync.cli.progress import backfill_progress, events_through, progress_text
from upsync.engine.syncs import WEBHOOK_CREDENTIAL_KEY, webhook_credential_ids
from upsync.errors import ConfigurationError, NotFound
from upsync.sources.stripe.collections import collection
from upsync.stream.catalog import (
    create_credential,
    create_sync,
    delete_credential,
    delete_sync,
    get_credential,
    get_stream,
    get_sync,
    list_credentials,
    list_syncs,
    update_sync,
)
from upsync.stream.models import Credential, Sync

CREATED_BY = "upsync syncs create"


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
    collection_ids = _collections(collections)
    meta = _metadata(metadata)
    key = _api_key(api_key_env)
    webhook_secret = _secret(webhook_secret_env, "whsec_") if webhook_secret_env else None
    schema = ctx.settings.schema

    async def work(conn: AConn) -> tuple[Sync, Credential]:
        async with conn.transaction():
            stream = await _stream(conn, stream_name, schema)
            cred = await create_credential(
                conn,
                provider=provider,
                kind=f"{provider}_key",
                secret=key,
                name=f"{api_key_env} ({name or external_id or provider})",
                test=key.startswith(("sk_test_", "rk_test_")),
                metadata={"created_by": CREATED_BY},
                schema=schema,
            )
            if webhook_secret is not None:
                hook = await create_credential(
                    conn,
                    provider=provider,
                    kind="stripe_webhook_secret",
                    secret=webhook_secret,
                    name=f"{webhook_secret_env} ({name or external_id or provider})",
                    metadata={"created_by": CREATED_BY},
                    schema=schema,
                )
                meta[WEBHOOK_CREDENTIAL_KEY] = hook.id
            sync = await create_sync(
                conn,
                stream_id=stream,
                provider=provider,
                name=name or external_id or provider,
                collection_ids=collection_ids,
                external_id=external_id,
                metadata=meta,
                credential_id=cred.id,
                rate_limit=None
                if rate_limit is None
                else {"allowed_requests": rate_limit, "interval": 1, "max_concurrent_requests": 0},
                schema=schema,
            )
        return sync, cred

    sync, cred = run_with_connection(ctx.settings, work)
    if as_json:
        echo_json(_sync_dict(sync, cred))
        return
    click.echo(f"Created sync {sync.id} ({sync.name}): {', '.join(sync.collection_ids)}")
    click.echo("API key stored as a credential (****). `upsync server` runs the sync.")


def _collections(raw: str) -> list[str]:
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        raise ConfigurationError("--collections: name at least one, e.g. customer,subscription")
    return list(dict.fromkeys(collection(n).collection_id for n in names))


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


async def _stream(conn: AConn, name: str, schema: str) -> str:
    try:
        return (await get_stream(conn, name, schema=schema)).id
    except NotFound:
        hint = "run `upsync init`" if name == "default" else "pass --stream with an existing one"
        raise NotFound(f"stream {name!r} not found: {hint}") from None


def _sync_dict(sync: Sync, cred: Credential | None) -> dict[str, Any]:
    out = sync.to_dict()
    out["credential"] = None if cred is None else cred.to_dict()
    out["backfill"] = backfill_progress(sync)
    out["events_through"] = events_through(sync)
    return out


async def _with_credentials(conn: AConn, found: Sequence[Sync], schema: str) -> list[Any]:
    creds = {c.id: c for c in await list_credentials(conn, schema=schema)}
    return [(s, creds.get(s.credential_id or "")) for s in found]


@syncs.command("list")
@json_option
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Every sync, oldest first."""
    schema = ctx.settings.schema

    async def work(conn: AConn) -> list[Any]:
        return await _with_credentials(conn, await list_syncs(conn, schema=schema), schema)

    pairs = run_with_connection(ctx.settings, work)
    if as_json:
        echo_json({"syncs": [_sync_dict(s, c) for s, c in pairs]})
        return
    print_table(
        "Syncs",
        ["id", "name", "external id", "status", "collections", "backfill"],
        [
            (s.id, s.name, s.external_id, s.status, ", ".join(s.collection_ids), progress_text(s))
            for s, _ in pairs
        ],
        empty="No syncs yet: `upsync syncs create stripe --api-key-env STRIPE_KEY …`.",
    )


@syncs.command("show")
@click.argument("sync_id", metavar="ID")
@json_option
@pass_ctx
def show(ctx: Context, sync_id: str, as_json: bool) -> None:
    """One sync, with its backfill progress per collection."""
    schema = ctx.settings.schema

    async def work(conn: AConn) -> tuple[Sync, Credential | None]:
        sync = await get_sync(conn, sync_id, schema=schema)
        cred = None
        if sync.credential_id:
            cred = await get_credential(conn, sync.credential_id, schema=schema)
        return sync, cred

    sync, cred = run_with_connection(ctx.settings, work)
    data = _sync_dict(sync, cred)
    if as_json:
        echo_json(data)
        return
    print_fields(
        [
            *((key, data[key]) for key in ("id", "name", "provider", "external_id", "status")),
            ("collections", ", ".join(sync.collection_ids)),
            ("stream_id", sync.stream_id),
            ("metadata", data["metadata"]),
            ("api key", "****" if cred else None),
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
        lambda conn: update_sync(conn, sync_id, status=status, schema=ctx.settings.schema),
    )


@syncs.command("pause")
@click.argument("sync_id", metavar="ID")
@pass_ctx
def pause(ctx: Context, sync_id: str) -> None:
    """Stop syncing (a running server stops it within seconds; progress is kept)."""
    sync = _set_status(ctx, sync_id, "disabled")
    click.echo(f"Paused sync {sync.id} ({sync.name}).")


@syncs.command("resume")
@click.argument("sync_id", metavar="ID")
@pass_ctx
def resume(ctx: Context, sync_id: str) -> None:
    """Resume a paused sync where it stopped."""
    sync = _set_status(ctx, sync_id, "active")
    click.echo(f"Resumed sync {sync.id} ({sync.name}).")


@syncs.command("delete")
@click.argument("sync_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def delete(ctx: Context, sync_id: str, yes: bool) -> None:
    """Delete a sync and the API key stored for it. Its records stay in the stream."""
    schema = ctx.settings.schema
    if not yes:
        click.confirm(f"Delete sync {sync_id} (its cursors are lost)?", abort=True, err=True)

    async def work(conn: AConn) -> Sync:
        async with conn.transaction():
            sync = await get_sync(conn, sync_id, schema=schema)
            await delete_sync(conn, sync.id, schema=schema)
            owned = [sync.credential_id] if sync.credential_id else []
            owned += webhook_credential_ids(sync.metadata)
            for credential_id in owned:
                with contextlib.suppress(NotFound):
                    cred = await get_credential(conn, credential_id, schema=schema)
                    if cred.metadata.get("created_by") == CREATED_BY:
                        # kept when another sync uses the same key
                        with contextlib.suppress(ConfigurationError):
                            await delete_credential(conn, cred.id, schema=schema)
        return sync

    sync = run_with_connection(ctx.settings, work)
    click.echo(f"Deleted sync {sync.id} ({sync.name}).")
