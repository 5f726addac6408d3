"""Typed tables for Stripe collections: the route, the DDL, and ORM model source.

``upsync schema stripe:subscription --format sql|sqlalchemy|django`` prints one of these, ready
for a migration. Every table has the standard columns (see :mod:`upsync.sinks.ddl`), the
collection's useful fields lifted out of ``data`` with real types, and ``data jsonb`` itself.
"""

from __future__ import annotations

from typing import Literal

from upsync.sinks.ddl import STANDARD_COLUMN_TYPES, create_table_text
from upsync.sinks.routes import Route
from upsync.sources.stripe.collections import StripeCollection, collection

__all__ = ["Format", "collection_route", "column_types", "render"]

Format = Literal["sql", "sqlalchemy", "django"]

_SA_TYPES = {
    "text": "Text",
    "bigint": "BigInteger",
    "boolean": "Boolean",
    "jsonb": "JSONB",
    "numeric": "Numeric",
    "timestamptz": "DateTime(timezone=True)",
}
_DJANGO_TYPES = {
    "text": "models.TextField(null=True)",
    "bigint": "models.BigIntegerField(null=True)",
    "boolean": "models.BooleanField(null=True)",
    "jsonb": "models.JSONField(null=True)",
    "numeric": "models.DecimalField(max_digits=20, decimal_places=6, null=True)",
    "timestamptz": "models.DateTimeField(null=True)",
}


def collection_route(collection_id: str, *, schema: str | None = "stripe") -> Route:
    """The route that fills :func:`render`'s table from records of ``collection_id``."""
    coll = collection(collection_id)
    return Route(
        coll.collection_id,
        coll.table,
        schema=schema,
        columns={f.column: f.source for f in coll.fields},
        # the whole object too: fields Stripe adds later are never lost, only not typed yet
        standard=[*STANDARD_COLUMN_TYPES, "data"],
    )


def column_types(collection_id: str) -> dict[str, str]:
    """SQL types of the collection's lifted fields."""
    return {f.column: f.pg_type for f in collection(collection_id).fields}


def render(collection_id: str, fmt: Format, *, schema: str | None = "stripe") -> str:
    """The table for ``collection_id`` as SQL DDL, a SQLAlchemy model or a Django model."""
    coll = collection(collection_id)
    if fmt == "sql":
        route = collection_route(collection_id, schema=schema)
        return create_table_text(route, column_types=column_types(collection_id)) + ";\n"
    if fmt == "sqlalchemy":
        return _sqlalchemy(coll, schema)
    if fmt == "django":
        return _django(coll, schema)
    raise ValueError(f"unknown format {fmt!r}")


def _class_name(coll: StripeCollection) -> str:
    return "".join(part.capitalize() for part in coll.name.replace(".", "_").split("_"))


def _all_columns(coll: StripeCollection) -> list[tuple[str, str]]:
    standard = [(name, type_.split()[0]) for name, type_ in STANDARD_COLUMN_TYPES.items()]
    return [*standard, *((f.column, f.pg_type) for f in coll.fields), ("data", "jsonb")]


def _sqlalchemy(coll: StripeCollection, schema: str | None) -> str:
    lines = [
        "from sqlalchemy import BigInteger, Boolean, DateTime, Numeric, Text",
        "from sqlalchemy.dialects.postgresql import JSONB",
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column",
        "",
        "",
        "class Base(DeclarativeBase):",
        "    pass",
        "",
        "",
        f"class {_class_name(coll)}(Base):",
        f'    """Stripe {coll.name} objects, kept current by upsync ({coll.collection_id})."""',
        "",
        f'    __tablename__ = "{coll.table}"',
    ]
    if schema:
        lines.append(f'    __table_args__ = {{"schema": "{schema}"}}')
    lines.append("")
    for name, pg_type in _all_columns(coll):
        sa_type = _SA_TYPES[pg_type]
        if name == "id":
            lines.append(f"    id: Mapped[str] = mapped_column({sa_type}, primary_key=True)")
        elif name in ("updated_idx", "deleted"):
            py = "int" if name == "updated_idx" else "bool"
            default = ", default=False" if name == "deleted" else ""
            lines.append(f"    {name}: Mapped[{py}] = mapped_column({sa_type}{default})")
        else:
            lines.append(f"    {name} = mapped_column({sa_type}, nullable=True)")
    return "\n".join(lines) + "\n"


def _django(coll: StripeCollection, schema: str | None) -> str:
    table = f'"{schema}"."{coll.table}"' if schema else coll.table
    lines = [
        "from django.db import models",
        "",
        "",
        f"class {_class_name(coll)}(models.Model):",
        f'    """Stripe {coll.name} objects, kept current by upsync ({coll.collection_id})."""',
        "",
    ]
    for name, pg_type in _all_columns(coll):
        if name == "id":
            field = "models.TextField(primary_key=True)"
        elif name == "updated_idx":
            field = "models.BigIntegerField()"
        elif name == "deleted":
            field = "models.BooleanField(default=False)"
        else:
            field = _DJANGO_TYPES[pg_type]
        lines.append(f"    {name} = {field}")
    lines += ["", "    class Meta:", f"        db_table = '{table}'", "        managed = False"]
    return "\n".join(lines) + "\n"
