"""The test database fixture and the embedded Postgres."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from upsync.embedded import start_embedded
from upsync.errors import ConfigurationError


@pytest.mark.smoke
def test_each_test_gets_its_own_schema(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> None:
    conn.execute("create table t (id int primary key)")
    conn.execute("insert into t values (1)")
    row = conn.execute("select current_schema(), count(*) from t").fetchone()
    assert row == (schema, 1)


def test_unusable_data_dir_gives_an_actionable_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "pgdata"
    data_dir.mkdir()
    (data_dir / "stray.txt").write_text("not a database")
    with pytest.raises(ConfigurationError, match="UPSYNC_DATABASE_URL") as info:
        start_embedded(data_dir)
    assert str(data_dir) in str(info.value)
