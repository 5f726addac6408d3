"""SQLAlchemy 2 (sync): routes from models and tables; apply on a Session or a Connection."""

from __future__ import annotations

import importlib
import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from tests.sinks import _orm_scenario as scenario
from tests.sinks._sqlalchemy_models import Base, Subscription, guide_columns, subscription_route
from upsync.errors import ConfigurationError, RowRejected
from upsync.records import Record
from upsync.sinks import TableSink, create_table_text
from upsync.sinks.sqlalchemy import apply, route_for


@pytest.fixture(params=["psycopg", "psycopg2"])
def engine(request: pytest.FixtureRequest, schema_dsn: str) -> Iterator[sa.Engine]:
    # the drivers are dev dependencies: a missing one fails here instead of skipping silently
    importlib.import_module(request.param)
    url, connect_args = scenario.sqlalchemy_url(schema_dsn, request.param)
    engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.NullPool)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def rows(engine: sa.Engine, table: sa.FromClause) -> list[scenario.Row]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*guide_columns(table)))]


# --- routes -------------------------------------------------------------------------------


def test_route_for_model_takes_table_and_standard_columns_from_the_model() -> None:
    route = subscription_route()
    assert (route.table, route.schema, route.deleted_column) == ("subscriptions", None, "deleted")
    assert set(route.standard) == {
        "id",
        "upstream_id",
        "deleted",
        "updated_idx",
        "sync_id",
        "sync_external_id",
        "sync_metadata",
        "upstream_created_at",
        "upstream_updated_at",
    }
    assert dict(route.columns) == scenario.GUIDE_COLUMNS


def test_route_for_core_table_keeps_its_schema_and_has_no_delete_flag_without_the_column() -> None:
    table = sa.Table(
        "charges",
        sa.MetaData(),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("updated_idx", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.Integer),
        schema="stripe",
    )
    route = route_for(table, "stripe:charge", {table.c.amount: "data.amount"})
    assert route.qualified_name == ("stripe", "charges")
    assert route.deleted_column is None
    assert [c.name for c in route.resolve(None)] == ["id", "updated_idx", "amount"]


def test_route_for_translates_attribute_names_to_column_names() -> None:
    class Local(DeclarativeBase):
        pass

    class Renamed(Local):
        __tablename__ = "renamed"
        id: Mapped[str] = mapped_column(primary_key=True)
        updated_idx: Mapped[int] = mapped_column(sa.BigInteger)
        customer: Mapped[str | None] = mapped_column("stripe_customer_id")
        plan: Mapped[str | None] = mapped_column("plan_id")

    route = route_for(
        Renamed, "stripe:subscription", {"customer": "data.customer", Renamed.plan: "data.plan"}
    )
    assert dict(route.columns) == {"stripe_customer_id": "data.customer", "plan_id": "data.plan"}


def charges(*columns: sa.Column[Any]) -> sa.Table:
    return sa.Table("charges", sa.MetaData(), *columns)


@pytest.mark.parametrize(
    ("table", "columns", "message"),
    [
        (
            charges(
                sa.Column("id", sa.Text, primary_key=True), sa.Column("updated_idx", sa.BigInteger)
            ),
            {"nope": "data.x"},
            "not a column",
        ),
        (
            charges(
                sa.Column("id", sa.Text, primary_key=True), sa.Column("updated_idx", sa.Integer)
            ),
            {},
            "use BigInteger",
        ),
        (
            charges(
                sa.Column("pk", sa.Integer, primary_key=True),
                sa.Column("id", sa.Text),
                sa.Column("updated_idx", sa.BigInteger),
            ),
            {},
            "primary key or unique",
        ),
    ],
    ids=["unknown-column", "int32-version", "key-not-unique"],
)
def test_route_for_refuses_tables_the_guarded_upsert_cannot_serve(
    table: sa.Table, columns: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        route_for(table, "stripe:charge", columns)


def test_route_for_refuses_what_is_not_a_model() -> None:
    with pytest.raises(ConfigurationError, match="mapped class"):
        route_for(object, "stripe:charge")


# --- apply --------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft-delete", "hard-delete"])
def test_session_applies_the_guide_example_keeping_highest_versions(
    engine: sa.Engine, hard_delete: bool
) -> None:
    sink = TableSink([subscription_route()], hard_delete=hard_delete)
    with Session(engine) as session:
        results = []
        for batch in scenario.BATCHES:
            with session.begin():
                results.append(apply(session, sink, batch))
        loaded = session.scalars(sa.select(Subscription).order_by(Subscription.id)).all()
    got = [
        (s.id, s.updated_idx, s.deleted, s.stripe_customer_id, s.plan_id, s.quantity, s.internal_id)
        for s in loaded
    ]
    scenario.check(results, got, hard_delete=hard_delete)


def test_connection_applies_into_a_schema_qualified_core_table(
    engine: sa.Engine, schema: str
) -> None:
    model_table: sa.Table = Subscription.__table__  # type: ignore[assignment]
    table = model_table.to_metadata(sa.MetaData(), schema=schema)
    route = route_for(table, "stripe:subscription", scenario.GUIDE_COLUMNS)
    assert route.schema == schema
    sink = TableSink([route])
    with engine.connect() as conn:
        results = [apply(conn, sink, batch) for batch in scenario.BATCHES]
        conn.commit()
    scenario.check(results, rows(engine, table))


def test_caller_rollback_leaves_nothing(engine: sa.Engine) -> None:
    sink = TableSink([subscription_route()])
    with Session(engine) as session:
        result = apply(session, sink, scenario.BATCHES[0])
        assert result.inserted == 3
        assert session.scalar(sa.select(sa.func.count()).select_from(Subscription)) == 3
        session.rollback()
    assert rows(engine, Subscription.__table__) == []


def test_batch_commits_only_with_the_callers_other_writes(engine: sa.Engine) -> None:
    sink = TableSink([subscription_route()])
    with engine.connect() as conn:
        conn.execute(sa.insert(Subscription).values(id="mine", updated_idx=1, deleted=False))
        apply(conn, sink, scenario.BATCHES[0])
        conn.rollback()
        apply(conn, sink, scenario.BATCHES[0][:1])
        conn.execute(sa.insert(Subscription).values(id="mine", updated_idx=1, deleted=False))
        conn.commit()
    assert sorted(r[0] for r in rows(engine, Subscription.__table__)) == sorted(
        ["mine", scenario.rid("A")]
    )


def test_bad_record_is_reported_and_the_good_ones_land(engine: sa.Engine) -> None:
    sink = TableSink([subscription_route()])
    with Session(engine) as session, session.begin():
        result = apply(session, sink, scenario.BATCHES[0])
    assert result.inserted == 3
    [error] = result.rejected
    assert isinstance(error, RowRejected)
    assert error.record_id == scenario.rid("BAD")
    assert error.sqlstate == "22001"
    assert "varying(32)" in error.reason


def test_isolation_off_raises_and_writes_nothing_of_the_batch(engine: sa.Engine) -> None:
    sink = TableSink([subscription_route()], isolate_bad_records=False)
    with Session(engine) as session, session.begin():
        session.add(Subscription(id="mine", updated_idx=1))
        with pytest.raises(RowRejected) as caught:
            apply(session, sink, scenario.BATCHES[0])
        assert caught.value.record_id == scenario.rid("BAD")
        # the caller's transaction is still usable, and its own write is kept
        assert session.scalars(sa.select(Subscription.id)).all() == ["mine"]


def test_session_flushes_pending_objects_before_the_batch(engine: sa.Engine) -> None:
    sink = TableSink([subscription_route()])
    with Session(engine) as session, session.begin():
        session.add(Subscription(id=scenario.rid("A"), updated_idx=100, plan_id="mine"))
        result = apply(session, sink, [scenario.subscription("A", 12)])
    assert (result.inserted, result.stale) == (0, 1)
    assert [r[4] for r in rows(engine, Subscription.__table__)] == ["mine"]


def test_loaded_objects_keep_old_values_until_expired(engine: sa.Engine) -> None:
    sink = TableSink([subscription_route()])
    with Session(engine) as session, session.begin():
        apply(session, sink, [scenario.subscription("A", 10)])
        loaded = session.get_one(Subscription, scenario.rid("A"))
        apply(session, sink, [scenario.subscription("A", 11)])
        assert loaded.updated_idx == 10  # the identity map is not refreshed by the sink
        session.expire_all()
        assert loaded.updated_idx == 11


def test_autocommit_connection_runs_the_batch_as_its_own_transaction(engine: sa.Engine) -> None:
    sink = TableSink([subscription_route()])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        result = apply(conn, sink, scenario.BATCHES[0])
    assert result.inserted == 3
    assert len(rows(engine, Subscription.__table__)) == 3


def test_migration_ddl_runs_through_sqlalchemy_and_the_reflected_table_takes_the_batch(
    engine: sa.Engine,
) -> None:
    ddl = create_table_text(
        "stripe:subscription",
        table="guide_subscriptions",
        column_types={
            "stripe_customer_id": "varchar(32)",
            "plan_id": "text",
            "quantity": "integer",
            "internal_id": "text",
        },
    )
    with engine.begin() as conn:
        conn.execute(sa.text(ddl))  # what Alembic's op.execute(ddl) runs
        table = sa.Table("guide_subscriptions", sa.MetaData(), autoload_with=conn)
    sink = TableSink([route_for(table, "stripe:subscription", scenario.GUIDE_COLUMNS)])
    with engine.begin() as conn:
        results = [apply(conn, sink, batch) for batch in scenario.BATCHES]
    scenario.check(results, rows(engine, table))


@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft-delete", "hard-delete"])
def test_random_redeliveries_in_random_batches_leave_the_highest_versions(
    engine: sa.Engine, rng: random.Random, hard_delete: bool
) -> None:
    sink = TableSink(
        [subscription_route()], hard_delete=hard_delete, chunk_size=rng.choice([1, 2, 3, 1000])
    )
    model: dict[str, Record] = {}
    for batch in scenario.random_batches(rng):
        with Session(engine) as session, session.begin():
            result = apply(session, sink, batch)
        expected, either = scenario.model_apply(model, batch, hard_delete=hard_delete)
        assert scenario.stale_if_either(scenario.counts_any(result), either) == expected
    with engine.connect() as conn:
        c = Subscription.__table__.c
        got = {r[0]: tuple(r) for r in conn.execute(sa.select(c.id, c.updated_idx, c.deleted))}
    assert got == scenario.model_rows(model, hard_delete=hard_delete)
