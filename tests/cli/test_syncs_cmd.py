"""`upsync syncs`: create, list, show, pause, resume and delete, through the real script."""

from __future__ import annotations

import json
import secrets

from tests.cli.conftest import Run, one_error_line, rows


def test_sync_lifecycle_never_shows_the_key(
    upsync: Run, ready: dict[str, str], pg_dsn: str, schema: str
) -> None:
    key = "sk_test_" + secrets.token_hex(12)
    with_key = {**ready, "STRIPE_KEY": key}
    create = upsync(
        "syncs", "create", "stripe", "--api-key-env", "STRIPE_KEY",
        "--collections", "customer,stripe:subscription", "--external-id", "acme",
        "--metadata", '{"plan": "gold"}', "--rate-limit", "10", "--json",
        env=with_key,
    )  # fmt: skip
    assert create.returncode == 0, create.stderr
    sync = json.loads(create.stdout)
    assert sync["collection_ids"] == ["stripe:customer", "stripe:subscription"]
    assert sync["external_id"] == "acme" and sync["name"] == "acme"
    assert (
        sync["metadata"] == {"plan": "gold"}
        and sync["credential"]["properties"]["secret"] == "****"
    )
    assert sync["rate_limit"]["allowed_requests"] == 10
    stored = rows(pg_dsn, schema, "SELECT secret FROM {s}.credentials")
    assert stored == [(key,)]
    outputs = [create]
    for args in (
        ("syncs", "list"),
        ("syncs", "list", "--json"),
        ("syncs", "show", sync["id"]),
        ("syncs", "show", sync["id"], "--json"),
        ("status", "--json"),
        ("syncs", "pause", sync["id"]),
    ):
        result = upsync(*args, env=with_key)
        assert result.returncode == 0, result.stderr
        outputs.append(result)
    assert all(key not in r.stdout + r.stderr for r in outputs)
    assert "****" in outputs[3].stdout and "acme" in outputs[1].stdout
    assert rows(pg_dsn, schema, "SELECT status FROM {s}.syncs") == [("disabled",)]
    assert upsync("syncs", "resume", sync["id"], env=ready).returncode == 0
    assert rows(pg_dsn, schema, "SELECT status FROM {s}.syncs") == [("active",)]
    deleted = upsync("syncs", "delete", sync["id"], "--yes", env=ready)
    assert deleted.returncode == 0, deleted.stderr
    assert rows(pg_dsn, schema, "SELECT count(*) FROM {s}.syncs") == [(0,)]
    assert rows(pg_dsn, schema, "SELECT count(*) FROM {s}.credentials") == [(0,)]


def test_sync_creation_errors_are_one_actionable_line(upsync: Run, ready: dict[str, str]) -> None:
    base = ("syncs", "create", "stripe", "--collections", "customer")
    missing = one_error_line(upsync(*base, "--api-key-env", "NO_SUCH_VAR_X", env=ready))
    assert "NO_SUCH_VAR_X is not set" in missing and "export NO_SUCH_VAR_X=" in missing
    key = "sk_test_" + secrets.token_hex(8)
    pasted = one_error_line(upsync(*base, "--api-key-env", key, env=ready))
    assert "NAME of an environment variable" in pasted and key not in pasted
    unknown = upsync(
        "syncs", "create", "stripe", "--api-key-env", "K", "--collections", "customer,custard",
        env={**ready, "K": key},
    )  # fmt: skip
    assert "unknown Stripe collection 'custard'" in one_error_line(unknown)
    assert "not found" in one_error_line(upsync("syncs", "show", "nope", env=ready))


def test_webhook_secret_is_stored_with_the_sync_and_never_shown(
    upsync: Run, ready: dict[str, str], pg_dsn: str, schema: str
) -> None:
    secret = "whsec_" + secrets.token_hex(16)
    env = {**ready, "STRIPE_KEY": "sk_test_" + secrets.token_hex(8), "HOOK": secret}
    create = upsync(
        "syncs", "create", "stripe", "--api-key-env", "STRIPE_KEY", "--webhook-secret-env", "HOOK",
        "--collections", "customer", "--json", env=env,
    )  # fmt: skip
    assert create.returncode == 0, create.stderr
    sync = json.loads(create.stdout)
    hook_id = sync["metadata"]["webhook_credential_id"]
    stored = rows(pg_dsn, schema, "SELECT kind, secret FROM {s}.credentials WHERE id = %s", hook_id)
    assert stored == [("stripe_webhook_secret", secret)]
    shown = upsync("syncs", "show", sync["id"], "--json", env=env)
    assert secret not in create.stdout + shown.stdout + create.stderr + shown.stderr
    pasted = upsync(
        "syncs", "create", "stripe", "--api-key-env", "STRIPE_KEY", "--webhook-secret-env", secret,
        "--collections", "customer", env=env,
    )  # fmt: skip
    assert pasted.returncode == 1 and secret not in pasted.stderr
    assert upsync("syncs", "delete", sync["id"], "--yes", env=env).returncode == 0
    assert rows(pg_dsn, schema, "SELECT count(*) FROM {s}.credentials") == [(0,)]
