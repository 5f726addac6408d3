"""SQLAlchemy 2 (async): apply on an AsyncSession or AsyncConnection, psycopg 3 and asyncpg."""

from __future__ import annotations

import dataclasses
import importlib
import random
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from tests.sinks import _orm_scenario as scenario
from tests.sinks._sqlalchemy_models import Base, Subscription, guide_columns, subscription_route
from upsync.errors import ConfigurationError, RowRejected
from upsync.records import Record
from upsync.sinks import TableSink
from upsync.sinks.sqlalchemy import apply, apply_async


@pytest.fixture(params=["psycopg", "asyncpg"])
async def engine(request: pytest.FixtureRequest, schema_dsn: str) -> AsyncIterator[AsyncEngine]:
    # the drivers are dev dependencies: a missing one fails here instead of skipping silently
    importlib.import_module(request.param)
    url, connect_args = scenario.sqlalchemy_url(schema_dsn, request.param)
    engine = create_async_engine(url, connect_args=connect_args, poolclass=sa.NullPool)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


async def rows(engine: AsyncEngine) -> list[scenario.Row]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(*guide_columns(Subscription.__table__)))
        return [tuple(r) for r in result]


@pytest.mark.smoke
@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft-delete", "hard-delete"])
async def test_async_session_applies_the_guide_example_keeping_highest_versions(
    engine: AsyncEngine, hard_delete: bool
) -> None:
    sink = TableSink([subscription_route()], hard_delete=hard_delete)
    async with AsyncSession(engine) as session:
        results = []
        for batch in scenario.BATCHES:
            async with session.begin():
                results.append(await apply_async(session, sink, batch))
        loaded = (await session.scalars(sa.select(Subscription))).all()
    got = [
        (s.id, s.updated_idx, s.deleted, s.stripe_customer_id, s.plan_id, s.quantity, s.internal_id)
        for s in loaded
    ]
    scenario.check(results, got, hard_delete=hard_delete)


async def test_async_connection_applies_in_its_transaction(engine: AsyncEngine) -> None:
    sink = TableSink([subscription_route()])
    async with engine.connect() as conn:
        results = [await apply_async(conn, sink, batch) for batch in scenario.BATCHES]
        await conn.commit()
    scenario.check(results, await rows(engine))


async def test_caller_rollback_leaves_nothing(engine: AsyncEngine) -> None:
    sink = TableSink([subscription_route()])
    async with AsyncSession(engine) as session:
        result = await apply_async(session, sink, scenario.BATCHES[0])
        assert result.inserted == 3
        count = sa.select(sa.func.count()).select_from(Subscription)
        assert await session.scalar(count) == 3
        await session.rollback()
    assert await rows(engine) == []


async def test_bad_record_is_reported_and_the_good_ones_land(engine: AsyncEngine) -> None:
    sink = TableSink([subscription_route()])
    async with engine.begin() as conn:
        result = await apply_async(conn, sink, scenario.BATCHES[0])
    [error] = result.rejected
    assert isinstance(error, RowRejected)
    assert (error.record_id, error.sqlstate) == (scenario.rid("BAD"), "22001")
    assert len(await rows(engine)) == 3


async def test_isolation_off_raises_and_keeps_the_callers_transaction_usable(
    engine: AsyncEngine,
) -> None:
    sink = TableSink([subscription_route()], isolate_bad_records=False)
    async with AsyncSession(engine) as session, session.begin():
        session.add(Subscription(id="mine", updated_idx=1))
        with pytest.raises(RowRejected) as caught:
            await apply_async(session, sink, scenario.BATCHES[0])
        assert caught.value.record_id == scenario.rid("BAD")
        assert (await session.scalars(sa.select(Subscription.id))).all() == ["mine"]
    assert [r[0] for r in await rows(engine)] == ["mine"]


async def test_autocommit_connection_runs_the_batch_as_its_own_transaction(
    engine: AsyncEngine,
) -> None:
    sink = TableSink([subscription_route()])
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        result = await apply_async(conn, sink, scenario.BATCHES[0])
    assert result.inserted == 3
    assert len(await rows(engine)) == 3


async def test_values_asyncpg_would_refuse_by_type_are_adapted_like_psycopg(
    engine: AsyncEngine,
) -> None:
    """An int or a bool bound for a text column lands as text, as on psycopg's path."""
    route = subscription_route()
    sink = TableSink(
        [
            type(route)(
                route.collection_id,
                route.table,
                columns={**route.columns, "plan_id": "data.quantity", "internal_id": "deleted"},
                standard=route.standard,
            )
        ]
    )
    async with engine.begin() as conn:
        result = await apply_async(conn, sink, [scenario.subscription("A", 7)])
    assert result.inserted == 1
    [row] = await rows(engine)
    assert row[4] == "7"
    assert row[6] in ("f", "false")  # psycopg's COPY writes "f"; Postgres' cast gives "false"


async def test_value_of_the_wrong_type_is_rejected_and_the_rest_land(engine: AsyncEngine) -> None:
    """asyncpg refuses it before sending, psycopg's server does: the outcome is the same."""
    sink = TableSink([subscription_route()])
    bad = scenario.subscription("X", 5)
    bad = dataclasses.replace(bad, data={**bad.data, "quantity": "many"})
    records = [scenario.subscription("A", 1), bad, scenario.subscription("Z", 2)]
    async with engine.begin() as conn:
        result = await apply_async(conn, sink, records)
    assert result.inserted == 2
    [error] = result.rejected
    assert isinstance(error, RowRejected)
    assert error.record_id == scenario.rid("X")
    assert sorted(r[0] for r in await rows(engine)) == sorted(
        [scenario.rid("A"), scenario.rid("Z")]
    )


@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft-delete", "hard-delete"])
async def test_random_redeliveries_in_random_batches_leave_the_highest_versions(
    engine: AsyncEngine, rng: random.Random, hard_delete: bool
) -> None:
    sink = TableSink(
        [subscription_route()], hard_delete=hard_delete, chunk_size=rng.choice([1, 2, 3, 1000])
    )
    model: dict[str, Record] = {}
    for batch in scenario.random_batches(rng):
        async with AsyncSession(engine) as session, session.begin():
            result = await apply_async(session, sink, batch)
        expected, either = scenario.model_apply(model, batch, hard_delete=hard_delete)
        assert scenario.stale_if_either(scenario.counts_any(result), either) == expected
    async with engine.connect() as conn:
        c = Subscription.__table__.c
        got = {
            r[0]: tuple(r) for r in await conn.execute(sa.select(c.id, c.updated_idx, c.deleted))
        }
    assert got == scenario.model_rows(model, hard_delete=hard_delete)


async def test_sync_apply_on_an_async_engine_says_to_use_apply_async(engine: AsyncEngine) -> None:
    sink = TableSink([subscription_route()])
    async with AsyncSession(engine) as session:
        with pytest.raises(ConfigurationError, match="use apply_async"):
            await session.run_sync(lambda s: apply(s, sink, scenario.BATCHES[0]))
