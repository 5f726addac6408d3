"""``upsync init``, ``upsync token …`` and ``upsync db …``."""

from __future__ import annotations

from typing import Any

import click

from upsync import ops
from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import (
    describe_database,
    embedded_state,
    run_with_connection,
    stop_embedded,
)
from upsync.cli.output import echo_json, json_option, note, print_fields, print_table
from upsync.ops.tokens import TokenInfo, create_token, list_tokens, revoke_token
from upsync.redact import redact
from upsync.stream.migrations import MIGRATIONS


@main.command()
@pass_ctx
def init(ctx: Context) -> None:
    """Create or upgrade upsync's tables and the stream "default".

    Safe to run again: it only does what is missing.
    """
    schema = ctx.settings.schema

    applied, created = run_with_connection(
        ctx.settings, lambda conn: ops.streams.init(conn, schema=schema)
    )
    latest = MIGRATIONS[-1].version
    click.echo(f"Database: {describe_database(ctx.settings)}")
    if applied:
        click.echo(f"Schema {schema!r}: applied {applied} migration(s), now at version {latest}")
    else:
        click.echo(f"Schema {schema!r}: up to date (version {latest})")
    click.echo(f"Stream {ops.streams.DEFAULT_STREAM!r}: {'created' if created else 'exists'}")
    click.echo(
        "Next: `upsync token create NAME` for the HTTP API, "
        "`upsync syncs create stripe --api-key-env STRIPE_KEY …`, then `upsync server`."
    )


@main.group()
def token() -> None:
    """Bearer tokens for the HTTP API (stored hashed; shown once, at creation)."""


@token.command("create")
@click.argument("name")
@pass_ctx
def token_create(ctx: Context, name: str) -> None:
    """Create a token NAME and print it (only the token, on stdout)."""
    value = run_with_connection(
        ctx.settings, lambda conn: create_token(conn, name, schema=ctx.settings.schema)
    )
    click.echo(value)
    note(f"Token {name!r} created. Store it now: it cannot be shown again.")


@token.command("list")
@json_option
@pass_ctx
def token_list(ctx: Context, as_json: bool) -> None:
    """Every token (active and revoked); never their values."""
    tokens: list[TokenInfo] = run_with_connection(
        ctx.settings, lambda conn: list_tokens(conn, schema=ctx.settings.schema)
    )
    if as_json:
        echo_json({"tokens": [_token_dict(t) for t in tokens]})
        return
    print_table(
        "Tokens",
        ["name", "status", "created", "revoked"],
        [
            (t.name, "revoked" if t.revoked_at else "active", t.created_at, t.revoked_at)
            for t in tokens
        ],
        empty="No tokens yet: `upsync token create NAME`.",
    )


def _token_dict(t: TokenInfo) -> dict[str, Any]:
    return {**t.to_dict(), "active": t.revoked_at is None}


@token.command("revoke")
@click.argument("name")
@pass_ctx
def token_revoke(ctx: Context, name: str) -> None:
    """Revoke the active token NAME: requests carrying it are refused from now on."""
    run_with_connection(
        ctx.settings, lambda conn: revoke_token(conn, name, schema=ctx.settings.schema)
    )
    click.echo(f"Token {name!r} revoked.")


@main.group()
def db() -> None:
    """The database upsync uses: where it is, and stopping the embedded one."""


@db.command("status")
@json_option
@pass_ctx
def db_status(ctx: Context, as_json: bool) -> None:
    """Where upsync's data lives and whether the embedded Postgres runs (starts nothing)."""
    settings = ctx.settings
    if settings.database_url:
        info: dict[str, Any] = {
            "kind": "external",
            "database_url": redact(settings.database_url),
            "schema": settings.schema,
        }
    else:
        info = {**embedded_state(settings).to_dict(), "schema": settings.schema}
    if as_json:
        echo_json(info)
        return
    print_fields(info.items())


@db.command("stop")
@pass_ctx
def db_stop(ctx: Context) -> None:
    """Stop the embedded Postgres (the next command starts it again)."""
    if ctx.settings.database_url:
        note("Nothing to stop: upsync uses the database at UPSYNC_DATABASE_URL, not its own.")
        return
    state = embedded_state(ctx.settings)
    if stop_embedded(ctx.settings):
        click.echo(f"Stopped the embedded Postgres in {state.data_dir}.")
    else:
        click.echo(f"The embedded Postgres in {state.data_dir} is not running.")
