"""``upsync server`` as a process: it serves, and SIGTERM stops it cleanly with exit code 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli.conftest import Run, one_error_line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Poll /healthz until it answers 200 (a subprocess offers no readiness signal)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited before serving"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url}/healthz did not answer within {timeout}s")


def test_server_serves_until_sigterm(ready: dict[str, str], tmp_path: Path, upsync: Run) -> None:
    port = free_port()
    script = Path(sys.executable).parent / "upsync"
    full_env = {**os.environ, "UPSYNC_HOME": str(tmp_path / "home"), **ready}
    process = subprocess.Popen(
        [str(script), "server", "--port", str(port), "--stripe-base-url", "http://127.0.0.1:9"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process)
        assert httpx.get(f"{url}/v1/streams").status_code == 401  # tokens are required
        taken = upsync("server", "--port", str(port), env=ready)
        assert "cannot listen on 127.0.0.1" in one_error_line(taken)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert f"upsync API on {url}" in out and "upsync token create" in out
    assert "Traceback" not in err
