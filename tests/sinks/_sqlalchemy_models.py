"""The guide's SQLAlchemy model, shared by the sync and async SQLAlchemy tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tests.sinks import _orm_scenario as scenario
from upsync.sinks import Route
from upsync.sinks.sqlalchemy import route_for


class Base(DeclarativeBase):
    pass


class Subscription(Base):
    """The guide's model; no schema: the connection's search_path finds the table."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(primary_key=True)
    upstream_id: Mapped[str | None]
    deleted: Mapped[bool] = mapped_column(default=False)
    updated_idx: Mapped[int] = mapped_column(sa.BigInteger)
    sync_id: Mapped[str | None]
    sync_external_id: Mapped[str | None]
    sync_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    upstream_created_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    upstream_updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(32))
    plan_id: Mapped[str | None]
    quantity: Mapped[int | None]
    internal_id: Mapped[str | None]


def subscription_route() -> Route:
    return route_for(Subscription, "stripe:subscription", columns=scenario.GUIDE_COLUMNS)


def guide_columns(table: sa.FromClause) -> list[sa.ColumnElement[Any]]:
    c = table.c
    return [
        c.id,
        c.updated_idx,
        c.deleted,
        c.stripe_customer_id,
        c.plan_id,
        c.quantity,
        c.internal_id,
    ]
