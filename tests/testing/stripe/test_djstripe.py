"""Acceptance: dj-stripe, unmodified, syncs every model the stand-in serves.

dj-stripe pins ``stripe<16`` (ours is newer), so it runs in a Python of its own, named by
``UPSYNC_DJSTRIPE_PYTHON`` (make one with ``python -m venv /tmp/djs && /tmp/djs/bin/pip install
'dj-stripe==2.11.0' 'stripe<16' 'psycopg[binary]'``); without it the test is skipped. A
throw-away Django project points dj-stripe at the stand-in with ``STRIPE_API_HOST``, migrates
a database of its own and runs ``djstripe_sync_models``; every dj-stripe table of a served
type must then hold exactly the ids the stand-in lists.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from upsync.testing.stripe import RunningStandin, Store, generate, run_standin
from upsync.testing.stripe.errors import StripeError
from upsync.testing.stripe.formdata import Params
from upsync.testing.stripe.objects.disputes import open_dispute

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
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
    "django.contrib.messages", "django.contrib.admin", "djstripe"]  # admin: its endpoint form
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware"]
TEMPLATES = [{{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {{"context_processors": ["django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages"]}}}}]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", "NAME": {name!r},
    "USER": {user!r}, "HOST": {host!r}, "PORT": {port!r}}}}}
STRIPE_API_HOST = {url!r}
STRIPE_TEST_SECRET_KEY = {key!r}
STRIPE_LIVE_MODE = False
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "acceptance_urls"
ALLOWED_HOSTS = ["127.0.0.1"]
"""

_URLS = """
from django.urls import include, path
urlpatterns = [path("stripe/", include("djstripe.urls", namespace="djstripe"))]
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


def migrated_project(
    python: str, served: RunningStandin, conn: psycopg.Connection[tuple[object, ...]], root: Path
) -> Path:
    """A throw-away Django project in ``root`` on ``conn``'s database, migrated."""
    info = conn.info
    (root / "acceptance_settings.py").write_text(
        _SETTINGS.format(
            name=info.dbname,
            user=info.user,
            host=info.host,
            port=info.port,
            url=served.url,
            key=_KEY,
        )
    )
    (root / "acceptance_urls.py").write_text(_URLS)
    migrated = _django(python, root, "migrate", "-v0")
    assert migrated.returncode == 0, migrated.stderr
    return root


@pytest.mark.slow
def test_djstripe_syncs_every_served_model(
    djstripe_python: str,
    served: RunningStandin,
    database: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
) -> None:
    migrated_project(djstripe_python, served, database, tmp_path)
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


# dj-stripe's admin form, unmodified, with one validator dropped: the form refuses loopback
# base URLs (made for public endpoints), the stand-in delivers only to loopback
_CREATE_ENDPOINT = """
import json
from djstripe import settings as djstripe_settings
from djstripe.admin.forms import WebhookEndpointAdminCreateForm
form = WebhookEndpointAdminCreateForm(data={
    "enabled_events": ["*"], "base_url": BASE_URL,
    "api_version": djstripe_settings.djstripe_settings.STRIPE_API_VERSION,
    "metadata": "{}", "djstripe_tolerance": 300, "djstripe_validation_method": "verify_signature",
})
form.fields["base_url"].validators = []
assert form.is_valid(), form.errors.as_json()
endpoint = form.save(commit=False)
endpoint.save()  # what ModelAdmin.save_model does
print(json.dumps({"id": endpoint.id, "url": endpoint.url, "secret": bool(endpoint.secret)}))
"""

_TRIGGERS = """
SELECT body::jsonb ->> 'id', valid, processed, exception FROM djstripe_webhookeventtrigger
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serving(python: str, project: Path, port: int) -> Iterator[None]:
    """``runserver`` on a loopback port, until it accepts connections; stopped on exit."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "acceptance_settings",
        "PYTHONPATH": str(project),
    }
    log = (project / "runserver.log").open("w")
    cmd = [python, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (project / "runserver.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "runserver did not listen within 60 s"
                time.sleep(0.1)  # polling the port with a deadline
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _act(store: Store, type_: str, oid: str, action: str, **params: Any) -> None:
    """``POST /v1/<type>s/{id}/<action>``, as the stand-in's API runs it."""
    with store.lock:
        store.resources[type_].actions[action](store, oid, Params(params))


def _first(store: Store, type_: str, **match: object) -> str:
    return next(str(o["id"]) for o in store.live(type_) if o.items() >= match.items())


def _update_one(store: Store, type_: str) -> None:
    """Change the metadata of the first object of ``type_`` the API lets change."""
    for obj in list(store.live(type_)):
        try:
            store.update(type_, obj["id"], {"metadata": {"acceptance": "updated"}})
            return
        except StripeError:
            continue  # a canceled subscription, a paid invoice …: the API refuses, as Stripe's


def _drive(store: Store) -> None:
    """Data and changes that make the stand-in emit each event type it emits."""
    generate(store, customers=8, seed=7, days=20)  # inside the 30-day event horizon
    customer = _first(store, "customer")
    product = store.create("product", {"name": "Gadget"})["id"]
    plan = store.create(
        "plan", {"amount": "500", "currency": "usd", "interval": "month", "product": product}
    )["id"]
    coupon = store.create("coupon", {"amount_off": "500", "currency": "usd", "duration": "once"})
    _act(
        store, "setup_intent", store.create("setup_intent", {"customer": customer})["id"], "cancel"
    )
    intent = store.create(
        "payment_intent", {"amount": "1000", "currency": "usd", "customer": customer}
    )
    _act(store, "payment_intent", intent["id"], "cancel")
    for actions in (("send", "void"), ("mark_uncollectible",)):
        invoice = store.create("invoice", {"customer": customer})["id"]
        store.create(
            "invoiceitem",
            {"customer": customer, "amount": "700", "currency": "usd", "invoice": invoice},
        )
        _act(store, "invoice", invoice, "finalize")
        for action in actions:
            _act(store, "invoice", invoice, action)
    store.delete("invoice", store.create("invoice", {"customer": customer})["id"])
    item = store.create("invoiceitem", {"customer": customer, "amount": "300", "currency": "usd"})
    store.delete("invoiceitem", item["id"])
    note = store.create("credit_note", {"invoice": _first(store, "invoice", status="paid")})
    _act(store, "credit_note", note["id"], "void")
    dispute = open_dispute(store, _first(store, "charge", disputed=False, refunded=False))
    store.update("dispute", dispute["id"], {"metadata": {"case": "1"}})
    _act(store, "dispute", dispute["id"], "close")
    _act(
        store,
        "payout",
        store.create("payout", {"amount": "900", "currency": "usd"})["id"],
        "cancel",
    )
    price = _first(store, "price")
    session = store.create(
        "checkout.session", {"line_items": [{"price": price, "quantity": "1"}], "mode": "payment"}
    )
    _act(store, "checkout.session", session["id"], "expire")
    _act(store, "subscription", _first(store, "subscription", status="active"), "resume")
    _act(store, "payment_method", _first(store, "payment_method"), "detach")
    store.delete("customer", store.create("customer", {"email": "gone@example.com"})["id"])
    store.create("account", {"type": "express", "email": "connected@example.com"})
    for type_, resource in store.resources.items():  # <stem>.updated for every type with one
        if resource.events is not None:
            _update_one(store, type_)
    store.delete("plan", plan)
    store.delete("product", product)
    store.delete("coupon", coupon["id"])


_KNOWN_GAP = frozenset({"invoice", "invoiceitem"})
"""Types whose create/update events dj-stripe cannot process once the object is deleted.

dj-stripe 2.11 re-reads the object of a create/update event and skips the event only when that
read is a 404; the stand-in answers ``GET`` of a deleted invoice or invoice item with the
deleted stub (200), so the handler fails on the stub (``KeyError: 'period'``, ``Invoice
matching query does not exist``). Only events racing the object's deletion (a draft deleted
before its ``invoice.created`` is processed) meet it; ``invoice.deleted`` and
``invoiceitem.deleted`` themselves are processed.
"""


def _known_gap(store: Store, event_type: str, oid: str) -> bool:
    stem = event_type.rsplit(".", 1)[0]
    return stem in _KNOWN_GAP and not event_type.endswith(".deleted") and _deleted(store, oid)


def _clean(triggers: list[tuple[bool, bool, str]]) -> bool:
    """Every delivery of the event verified and processed, none raised."""
    return all(valid and processed and not exception for valid, processed, exception in triggers)


def _settled(
    conn: psycopg.Connection[tuple[object, ...]], emitted: set[str], deadline: float
) -> dict[str, list[tuple[bool, bool, str]]]:
    """dj-stripe's triggers per event id, once every emitted event has a processed one."""
    while True:
        triggers: dict[str, list[tuple[bool, bool, str]]] = {}
        for event_id, valid, processed, exception in conn.execute(_TRIGGERS):
            triggers.setdefault(str(event_id), []).append(
                (bool(valid), bool(processed), str(exception))
            )
        done = {e for e, ts in triggers.items() if any(v and p for v, p, _ in ts)}
        if emitted <= done or time.monotonic() > deadline:
            return triggers
        time.sleep(0.5)  # polling the database with a deadline


@pytest.mark.slow
def test_djstripe_processes_every_webhook_event_type(
    djstripe_python: str,
    served: RunningStandin,
    database: psycopg.Connection[tuple[object, ...]],
    tmp_path: Path,
) -> None:
    project = migrated_project(djstripe_python, served, database, tmp_path)
    port = _free_port()
    code = _CREATE_ENDPOINT.replace("BASE_URL", repr(f"http://127.0.0.1:{port}"))
    created = _django(djstripe_python, project, "shell", "-c", code)
    assert created.returncode == 0, created.stderr[-3000:]
    endpoint = json.loads(created.stdout.strip().splitlines()[-1])
    assert endpoint["secret"], "dj-stripe stored no signing secret"
    assert served.store.find(endpoint["id"]) is not None
    emitted: dict[str, tuple[str, str]] = {}  # event id → (type, object id), of every event

    def record(event: dict[str, Any]) -> None:
        emitted[event["id"]] = (event["type"], event["data"]["object"]["id"])

    unsubscribe = served.store.subscribe(record)
    with _serving(djstripe_python, project, port):
        try:
            _drive(served.store)
        finally:
            unsubscribe()
        excused = {e for e, (t, oid) in emitted.items() if _known_gap(served.store, t, oid)}
        expected = set(emitted) - excused
        triggers = _settled(database, expected, time.monotonic() + 150)
    failed = {e: ts[-1][2] for e, ts in triggers.items() if e in expected and not _clean(ts)}
    assert failed == {}, f"not processed: { {emitted[e][0]: x for e, x in failed.items()} }"
    missing = sorted({emitted[e][0] for e in expected - set(triggers)})
    assert missing == [], f"event types never processed: {missing}"
    types = {emitted[e][0] for e in expected}
    deliveries = [t for e in expected for t in triggers[e]]
    print(
        f"webhook events processed {len(expected)}/{len(expected)} types={len(types)}"
        f" deliveries={len(deliveries)}/{len(deliveries)}"
        f" (excused, see _KNOWN_GAP: {sorted(emitted[e][0] for e in excused)})"
    )
