"""Running the real ``upsync`` console script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def upsync(tmp_path: Path) -> Run:
    """Run ``upsync ARGS…`` as a user would; returns the completed process (never raises)."""
    script = Path(sys.executable).parent / "upsync"
    assert script.exists(), f"console script not installed next to {sys.executable}"

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "UPSYNC_HOME": str(tmp_path / "home"), **(env or {})}
        return subprocess.run(
            [str(script), *args], capture_output=True, text=True, env=full_env, timeout=timeout
        )

    return run


@pytest.fixture
def env(pg_dsn: str, schema: str) -> dict[str, str]:
    """Environment for commands that work in the test's schema of the test database."""
    return {"UPSYNC_DATABASE_URL": pg_dsn, "UPSYNC_SCHEMA": schema}


@pytest.fixture
def ready(upsync: Run, env: dict[str, str]) -> dict[str, str]:
    """:func:`env`, after ``upsync init`` ran in it."""
    result = upsync("init", env=env)
    assert result.returncode == 0, result.stderr
    return env


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure contract: exit 1, one line on stderr, nothing on stdout, no traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def rows(dsn: str, schema: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """``query`` with ``{s}`` standing for the test's schema."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql.SQL(query).format(s=sql.Identifier(schema)), params).fetchall()
