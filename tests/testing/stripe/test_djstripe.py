"""Acceptance: dj-stripe, unmodified, syncs every model the stand-in serves.

dj-stripe pins ``stripe<16`` (ours is newer), so it runs in a Python of its own, named by
``UPSYNC_DJSTRIPE_PYTHON`` (make one with ``python -m venv /tmp/djs && /tmp/djs/bin/pip install
'dj-stripe==2.11.0' 'stripe<16' 'psycopg[binary]'``); without it the test is skipped. A
throw-away Django project points dj-stripe at the stand-in with ``STRIPE_API_HOST``, migrates
a database of its own and runs ``djstripe_sync_models``; every dj-stripe table of a served
type must then hold exactly the ids the stand-in lists.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from upsync.testing.stripe import RunningStandin, Store, generate, run_standin

PYTHON_ENV = "UPSYNC_DJSTRIPE_PYTHON"

TABLES = {
    "customer": "djstripe_customer",
    "payment_method": "djstripe_paymentmethod",
    "setup_intent": "djstripe_setupintent",
    "product": "djstripe_product",
    "price": "djstripe_price",
    "coupon": "djstripe_coupon",
    "tax_rate": "djstripe_taxrate",
    "subscription": "djstripe_subscription",
    "subscription_item": "djstripe_subscriptionitem",
    "invoice": "djstripe_invoice",
    "line_item": "djstripe_lineitem",
    "invoiceitem": "djstripe_invoiceitem",
    "charge": "djstripe_charge",
    "payment_intent": "djstripe_paymentintent",
    "refund": "djstripe_refund",
    "dispute": "djstripe_dispute",
    "payout": "djstripe_payout",
    "balance_transaction": "djstripe_balancetransaction",
    "checkout.session": "djstripe_session",
    "event": "djstripe_event",
}
"""each served type dj-stripe has a model for, and that model's table"""

_SETTINGS = """
import os
SECRET_KEY = "acceptance"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "djstripe"]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": {name!r},
    "USER": {user!r}, "HOST": {host!r}, "PORT": {port!r}}}}}
STRIPE_API_HOST = {url!r}
STRIPE_TEST_SECRET_KEY = {key!r}
STRIPE_LIVE_MODE = False
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
"""

# dj-stripe checks a key's form: 24+ alphanumerics after the prefix
_KEY = "sk_test_51UpsyncStandinAcceptance0000"


@pytest.fixture
def djstripe_python() -> str:
    python = os.environ.get(PYTHON_ENV)
    if not python:
        pytest.skip(f"set {PYTHON_ENV} to a Python with dj-stripe 2.11 and stripe<16")
    return python


@pytest.fixture
def served() -> Iterator[RunningStandin]:
    store = Store(seed=7)
    generate(store, customers=60, seed=7)  # 60 customers make a dispute and refunds
    with run_standin(store, rate_limit=None, api_key=_KEY) as standin:
        yield standin


@pytest.fixture
def database(pg_dsn: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    name = f"djstripe_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with psycopg.connect(pg_dsn, dbname=name, autocommit=True) as conn:
                yield conn
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _django(python: str, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "acceptance_settings",
        "PYTHONPATH": str(project),
    }
    return subprocess.run(
        [python, "-m", "django", *args], env=env, capture_output=True, text=True, timeout=900
    )


def _live_ids(store: Store, type_: str) -> set[str]:
    return {o["id"] for o in store.live(type_)}


def _deleted(store: Store, oid: str) -> bool:
    entry = store.find(oid)
    return entry is not None and entry.deleted


@pytest.mark.slow
def test_djstripe_syncs_every_served_model(
    djstripe_python: str,
    served: RunningStandin,
    database: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
) -> None:
    info = database.info
    (tmp_path / "acceptance_settings.py").write_text(
        _SETTINGS.format(
            name=info.dbname,
            user=info.user,
            host=info.host,
            port=info.port,
            url=served.url,
            key=_KEY,
        )
    )
    migrated = _django(djstripe_python, tmp_path, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    synced = _django(djstripe_python, tmp_path, "djstripe_sync_models")
    # models of endpoints the stand-in does not serve (issuing, transfers …) fail; ours may not
    assert "Error syncing" not in synced.stdout + synced.stderr, synced.stdout[-3000:]
    matched = 0
    for type_, table in TABLES.items():
        rows = database.execute(sql.SQL("SELECT id FROM {}").format(sql.Identifier(table)))
        ids, live = {str(r[0]) for r in rows}, _live_ids(served.store, type_)
        assert live <= ids, f"{type_}: missing {sorted(live - ids)[:5]}"
        # dj-stripe keeps what deleted events told it about (a customer marked purged)
        kept = {i for i in ids - live if not _deleted(served.store, i)}
        assert kept == set(), f"{type_}: not in the stand-in's lists {sorted(kept)[:5]}"
        matched += 1
    print(f"models synced {matched}/{len(TABLES)}")
