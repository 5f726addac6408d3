"""The commands on the embedded Postgres: started on demand, reused, stopped by `db stop`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Run
from upsync.embedded import start_embedded


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh UPSYNC_HOME; an embedded Postgres left running by a failed test is stopped."""
    path = tmp_path_factory.mktemp("home")
    yield path
    if (path / "pgdata" / "postmaster.pid").exists():
        start_embedded(path / "pgdata").stop()


@pytest.mark.smoke
def test_init_status_and_stop_on_the_embedded_postgres(upsync: Run, home: Path) -> None:
    env = {"UPSYNC_HOME": str(home), "UPSYNC_DATABASE_URL": "", "UPSYNC_SCHEMA": ""}
    init = upsync("init", env=env)
    assert init.returncode == 0, init.stderr
    assert f"embedded Postgres in {home.resolve() / 'pgdata'}" in init.stdout
    assert init.stderr == ""  # no library chatter
    status = upsync("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) | {"database": None} == {
        "database": None,
        "schema": "upsync",
        "syncs": [],
        "consumers": [],
    }
    db = json.loads(upsync("db", "status", "--json", env=env).stdout)
    assert db["running"] is True and db["kind"] == "embedded" and db["pid"]
    stopped = upsync("db", "stop", env=env)
    assert stopped.returncode == 0 and "Stopped the embedded Postgres" in stopped.stdout
    assert not (home / "pgdata" / "postmaster.pid").exists()
    assert json.loads(upsync("db", "status", "--json", env=env).stdout)["running"] is False
    assert "is not running" in upsync("db", "stop", env=env).stdout


def test_a_broken_data_dir_is_one_line(upsync: Run, home: Path) -> None:
    (home / "pgdata").mkdir()
    (home / "pgdata" / "PG_VERSION").write_text("garbage\n")
    env = {"UPSYNC_HOME": str(home), "UPSYNC_DATABASE_URL": ""}
    result = upsync("status", env=env)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not start the embedded Postgres" in lines[0], result.stderr
