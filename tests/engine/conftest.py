"""Fixtures for engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.engine.helpers import Setup, table_consumer_world


@pytest.fixture
async def setup(schema_dsn: str, schema: str) -> AsyncIterator[Setup]:
    async with table_consumer_world(schema_dsn, schema) as (pool, sync, consumer, target):
        yield Setup(pool, schema, sync, consumer, target)
