"""``python -m upsync.testing.stripe`` serves a seeded stand-in on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import stripe


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline: float) -> None:
    # polling with a deadline: the child process offers no readiness signal but its port
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "exited"
        try:
            if httpx.get(f"{url}/_standin/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the stand-in command did not become healthy in time")


def test_the_command_serves_generated_data() -> None:
    port = _free_port()
    args = [
        "--port",
        str(port),
        "--seed",
        "1",
        "--customers",
        "20",
        "--live-rate",
        "5",
        "--live-duration",
        "2",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "upsync.testing.stripe", *args], stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, time.monotonic() + 30)
        client = stripe.StripeClient(
            "sk_test_cli", base_addresses={"api": url}, max_network_retries=0
        )
        customers = list(client.v1.customers.list(params={"limit": 100}).auto_paging_iter())
        assert len(customers) >= 15
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        if proc.stderr:
            proc.stderr.close()
