"""Object shapes against Stripe's own fixtures (``fixtures3.json``, vendored in ``spec``).

Each stand-in object must have every key of the fixture object of its type (also inside
nested hashes), and each value the same JSON type where both are non-null. Not compared:
values inside ``metadata`` (user data) and inside an event's ``data`` (it depends on the
event type); where a fixture value is an object and the stand-in's is ``null`` (or the other
way round), the type is not compared either.
"""

from __future__ import annotations

from typing import Any

import pytest

from upsync.testing.stripe import Store, generate, spec

# types the generator does not make on its own
_EXTRA_PARAMS: dict[str, dict[str, Any]] = {
    "plan": {"amount": "100", "currency": "usd", "interval": "month"},
    "webhook_endpoint": {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]},
}


@pytest.fixture(scope="module")
def fixtures() -> dict[str, Any]:
    return spec.fixtures()


@pytest.fixture(scope="module")
def populated() -> Store:
    store = Store(seed=7)
    generate(store, customers=60, seed=7)
    product = next(store.live("product"))["id"]
    store.create("plan", {**_EXTRA_PARAMS["plan"], "product": product})
    store.create("webhook_endpoint", _EXTRA_PARAMS["webhook_endpoint"])
    return store


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _check(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> list[str]:
    """Keys of ``theirs`` missing from ``ours``, and JSON types that differ, into sub-hashes.

    User data (``metadata``) and an event's ``data`` (its shape depends on the event type) are
    not compared below the top level; embedded lists are checked by their own test.
    """
    problems = [f"{where}: missing {key}" for key in sorted(theirs.keys() - ours.keys())]
    for key in sorted(theirs.keys() & ours.keys()):
        a, b = ours[key], theirs[key]
        if a is None or b is None:
            continue
        if _kind(a) != _kind(b):
            problems.append(f"{where}.{key}: {_kind(a)} where Stripe has {_kind(b)}")
        elif isinstance(a, dict) and key not in _OPAQUE and a.get("object") != "list":
            problems += _check(a, b, f"{where}.{key}")
    return problems


_OPAQUE = frozenset({"metadata", "data"})


SERVED = [
    "customer", "payment_method", "setup_intent", "product", "price", "plan", "coupon",
    "tax_rate", "subscription", "subscription_item", "invoice", "line_item", "invoiceitem",
    "credit_note", "credit_note_line_item", "charge", "payment_intent", "refund", "dispute",
    "payout", "balance_transaction", "checkout.session", "webhook_endpoint", "event",
]  # fmt: skip


@pytest.mark.parametrize("type_", SERVED)
def test_objects_have_the_fixture_keys_and_types(
    type_: str, fixtures: dict[str, Any], populated: Store
) -> None:
    objects = list(populated.live(type_))
    assert objects, f"the generator made no {type_}"
    assert _check(objects[0], fixtures[type_], type_) == []
    assert objects[0]["object"] == fixtures[type_]["object"]


@pytest.mark.parametrize(
    ("parent", "field"),
    [
        ("subscription", "items"),
        ("invoice", "lines"),
        ("charge", "refunds"),
        ("credit_note", "lines"),
    ],
    ids=["subscription.items", "invoice.lines", "charge.refunds", "credit_note.lines"],
)
def test_embedded_lists_match_the_fixture(
    parent: str, field: str, fixtures: dict[str, Any], populated: Store
) -> None:
    with_children = [o for o in populated.live(parent) if o[field]["data"]]
    assert with_children, f"no {parent} with {field}"
    ours, theirs = with_children[0][field], fixtures[parent][field]
    assert _check(ours, theirs, f"{parent}.{field}") == []
    if theirs["data"]:
        assert _check(ours["data"][0], theirs["data"][0], f"{parent}.{field}.data[0]") == []


@pytest.mark.parametrize("type_", ["customer", "product", "coupon", "invoiceitem", "plan"])
def test_deleted_stubs_match_the_fixture(type_: str, fixtures: dict[str, Any]) -> None:
    store = Store(seed=3)
    customer = store.create("customer", {"name": "x"})["id"]
    make = {
        "customer": lambda: customer,
        "product": lambda: store.create("product", {"name": "p"})["id"],
        "coupon": lambda: store.create("coupon", {"percent_off": "5"})["id"],
        "invoiceitem": lambda: store.create("invoiceitem", {"customer": customer, "amount": "100"})[
            "id"
        ],
        "plan": lambda: store.create(
            "plan",
            {**_EXTRA_PARAMS["plan"], "product": store.create("product", {"name": "q"})["id"]},
        )["id"],
    }
    stub = store.delete(type_, make[type_]())
    assert stub.keys() == fixtures[f"deleted_{type_}"].keys()
    assert store.render(store.find(stub["id"])) == stub  # type: ignore[arg-type]


def test_dispute_balance_transactions_are_full_objects(populated: Store) -> None:
    """Stripe embeds the balance transactions of a dispute (ids were a stand-in bug)."""
    disputes = list(populated.live("dispute"))
    assert disputes, "the generator made no dispute"
    for dispute in disputes:
        txns = dispute["balance_transactions"]
        assert txns and all(t["object"] == "balance_transaction" for t in txns), txns
        assert txns[0]["source"] == dispute["id"] and txns[0]["amount"] == -dispute["amount"]
