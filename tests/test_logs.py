"""Logs never carry secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest

from upsync.logs import configure_logging


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_secrets_in_messages_arguments_and_tracebacks_are_masked(fmt: str) -> None:
    out = io.StringIO()
    configure_logging("info", fmt, stream=out)
    log = logging.getLogger("upsync.test")
    log.info("using key %s for %s", "sk_test_51Habc123", "acme")
    try:
        raise ValueError("bad secret whsec_abcdef123 in postgresql://u:hunter2@db/x")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert "sk_test_51Habc123" not in text and "whsec_abcdef123" not in text
    assert "hunter2" not in text
    assert "acme" in text and "****" in text
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert lines[0]["level"] == "info" and "exception" in lines[1]
    logging.getLogger().handlers.clear()
