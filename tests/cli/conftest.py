"""Running the real ``upsync`` console script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

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
