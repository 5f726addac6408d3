"""Commands that need nothing running: ``schema``."""

from __future__ import annotations

import click

from upsync.cli.app import main
from upsync.schema import render


@main.command()
@click.argument("collection", metavar="COLLECTION")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["sql", "sqlalchemy", "django"]),
    default="sql",
    show_default=True,
    help="SQL DDL, a SQLAlchemy model or a Django model.",
)
@click.option("--schema", "db_schema", default="stripe", show_default=True, help="Target schema.")
def schema(collection: str, fmt: str, db_schema: str) -> None:
    """Print a typed table for a Stripe COLLECTION (e.g. stripe:subscription).

    The table has the standard columns (id, upstream_id, deleted, updated_idx, sync_*, upstream
    timestamps), the collection's useful fields with real types, and data jsonb.
    """
    click.echo(render(collection, fmt, schema=db_schema or None), nl=False)  # type: ignore[arg-type]
