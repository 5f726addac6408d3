"""Seeded, realistic data for the stand-in, and live traffic that keeps changing it.

:func:`generate` builds an account's history: products → prices; customers → payment
methods → subscriptions with items → invoices with lines → payment intents → charges →
balance transactions; refunds and disputes on some charges; one-off invoice items, credit
notes, checkout sessions, payouts. Objects are created in time order over ``days`` of
backdated history, so ``created`` values spread out and lists page naturally; events older
than 30 days expire like Stripe's.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .errors import StripeError
from .objects.checkout import complete_session
from .objects.cycles import renew_due, renew_subscription
from .objects.disputes import open_dispute
from .objects.invoices import finalize_invoice, pay_invoice
from .objects.payments import refund_charge
from .objects.subscriptions import cancel_subscription
from .store import Store

__all__ = ["LiveTraffic", "generate"]

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus")
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Perlman",
)
_PLANS = (("Starter", 900), ("Team", 2900), ("Business", 9900), ("Enterprise", 49900))


@dataclass
class _Plan:
    """Actions scheduled at backdated times, run in time order (actions may schedule more)."""

    actions: list[tuple[int, int, Callable[[], Any]]] = field(default_factory=list)
    _seq: int = 0

    def at(self, when: int, action: Callable[[], Any]) -> None:
        self._seq += 1
        heapq.heappush(self.actions, (when, self._seq, action))


def generate(
    store: Store, customers: int = 100, seed: int = 1, days: int = 90, events: bool = True
) -> dict[str, int]:
    """Fill ``store`` with a reproducible account history; returns live counts per type.

    The same ``seed`` and size give the same ids and values (given a fresh store built with
    the same ``Store(seed=…)``). ``events=False`` records no events (saves memory when only
    the objects matter, e.g. for a backfill benchmark).
    """
    with contextlib.nullcontext() if events else store.quiet():
        _generate(store, customers, random.Random(seed), days)
    return {name: store.count(name) for name in store.resources}


def _generate(store: Store, customers: int, rng: random.Random, days: int) -> None:
    end = store.clock.now()
    start = end - days * 86400
    prices = _catalog(store, rng, start)
    plan = _Plan()
    for i in range(customers):
        joined = start + 3600 + int((end - start - 7200) * i / max(customers, 1))
        story = random.Random(rng.random())
        plan.at(joined, partial(_customer_story, store, story, prices, joined, end, plan))
    for when in range(start + 7 * 86400, end, 7 * 86400):
        plan.at(when, partial(_payout, store, rng))
    _run(store, plan)


def _run(store: Store, plan: _Plan) -> None:
    while plan.actions:
        when, _, action = heapq.heappop(plan.actions)
        with store.at(when):
            action()


def _payout(store: Store, rng: random.Random) -> None:
    amount = str(rng.randint(1_000, 50_000) * 100)
    store.create("payout", {"amount": amount, "currency": "usd"})


def _catalog(store: Store, rng: random.Random, start: int) -> list[str]:
    prices = []
    with store.at(start):
        for name, amount in _PLANS:
            product = store.create("product", {"name": name, "description": f"The {name} plan"})
            for interval, factor in (("month", 1), ("year", 10)):
                p = {
                    "product": product["id"],
                    "currency": "usd",
                    "unit_amount": str(amount * factor),
                    "recurring": {"interval": interval},
                    "nickname": f"{name} {interval}ly",
                }
                prices.append(store.create("price", p)["id"])
        store.create(
            "tax_rate",
            {"display_name": "VAT", "percentage": "20", "country": "DE", "inclusive": "false"},
        )
        store.create("coupon", {"percent_off": "25", "duration": "once", "name": "Launch"})
    return prices


def _customer_story(
    store: Store, rng: random.Random, prices: list[str], joined: int, end: int, plan: _Plan
) -> None:
    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    email = f"{name.lower().replace(' ', '.')}{rng.randrange(1000)}@example.com"
    cus = store.create(
        "customer", {"name": name, "email": email, "metadata": {"source": "standin"}}
    )
    pm = store.create(
        "payment_method",
        {"type": "card", "customer": cus["id"], "billing_details": {"name": name}},
    )
    with store.change("customer", cus["id"]) as obj:
        obj["invoice_settings"]["default_payment_method"] = pm["id"]
    store.create(
        "setup_intent", {"customer": cus["id"], "payment_method": pm["id"], "confirm": "true"}
    )
    roll = rng.random()
    if roll < 0.75:
        items = {"0": {"price": rng.choice(prices), "quantity": str(rng.randint(1, 5))}}
        trial = {"trial_period_days": "14"} if rng.random() < 0.15 else {}
        sub = store.create(
            "subscription", {"customer": cus["id"], "items": list(items.values()), **trial}
        )
        _later(plan, rng, joined, end, lambda: _maybe_cancel(store, rng, sub["id"]))
        _schedule_renewal(store, plan, sub["id"], end)
        _charges_aftermath(store, rng, cus["id"], plan, joined, end)
    elif roll < 0.9:
        _one_off_invoice(store, rng, cus["id"])
    else:
        session = store.create(
            "checkout.session",
            {
                "mode": "payment",
                "customer": cus["id"],
                "line_items": [{"price": prices[0], "quantity": "1"}],
                "success_url": "https://example.com/ok",
            },
        )
        _later(plan, rng, joined, end, lambda: complete_session(store, session["id"]))
    if rng.random() < 0.05:
        _later(plan, rng, joined, end, lambda: store.delete("customer", cus["id"]))


def _later(
    plan: _Plan, rng: random.Random, after: int, end: int, action: Callable[[], Any]
) -> None:
    if end - after > 120:
        plan.at(rng.randint(after + 60, end - 60), action)


def _schedule_renewal(store: Store, plan: _Plan, sub_id: str, end: int) -> None:
    items = store.children("subscription_item", "subscription", sub_id).entries
    if items:
        due = min(item.obj["current_period_end"] for item in items)
        if due <= end:
            plan.at(due, partial(_renew, store, plan, sub_id, end))


def _renew(store: Store, plan: _Plan, sub_id: str, end: int) -> None:
    if renew_subscription(store, sub_id) is not None:
        _schedule_renewal(store, plan, sub_id, end)


def _maybe_cancel(store: Store, rng: random.Random, sub_id: str) -> None:
    if rng.random() < 0.2 and store.get("subscription", sub_id).obj["status"] != "canceled":
        cancel_subscription(store, sub_id)
    else:
        with store.change("subscription", sub_id) as obj:
            obj["metadata"]["seats_reviewed"] = "yes"


def _charges_aftermath(
    store: Store, rng: random.Random, customer: str, plan: _Plan, joined: int, end: int
) -> None:
    for entry in list(store.children("charge", "customer", customer).entries):
        charge_id = entry.id
        roll = rng.random()
        if roll < 0.08:
            _later(
                plan,
                rng,
                joined,
                end,
                partial(refund_charge, store, charge_id, None, "requested_by_customer"),
            )
        elif roll < 0.11:
            _later(plan, rng, joined, end, partial(open_dispute, store, charge_id))


def _one_off_invoice(store: Store, rng: random.Random, customer: str) -> None:
    inv = store.create("invoice", {"customer": customer, "description": "Consulting"})
    for _ in range(rng.randint(1, 14)):
        store.create(
            "invoiceitem",
            {
                "customer": customer,
                "invoice": inv["id"],
                "amount": str(rng.randint(5, 500) * 100),
                "currency": "usd",
                "description": "Hours",
            },
        )
    finalize_invoice(store, inv["id"])
    if rng.random() < 0.8:
        pay_invoice(store, inv["id"])
        if rng.random() < 0.2:
            store.create(
                "credit_note", {"invoice": inv["id"], "amount": "500", "reason": "order_change"}
            )


class LiveTraffic:
    """Keeps creating, updating and deleting objects at ``rate`` operations per second.

    Runs in a daemon thread; stops after ``duration`` seconds or on :meth:`stop`.
    """

    def __init__(
        self, store: Store, rate: float = 5.0, duration: float = 60.0, seed: int = 1
    ) -> None:
        self.store = store
        self.rate = rate
        self.duration = duration
        self.operations = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stripe-standin-live", daemon=True)
        self._prices: list[str] = []

    def start(self) -> LiveTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the traffic to end by itself; ``True`` if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self) -> LiveTraffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        deadline = time.monotonic() + self.duration
        interval = 1.0 / self.rate
        # waiting on the stop event paces the loop and makes stop() immediate
        while not self._stop.wait(interval) and time.monotonic() < deadline:
            with contextlib.suppress(StripeError):  # e.g. a target deleted meanwhile
                self.step()
            self.operations += 1

    def step(self) -> None:
        """One random change, weighted like a busy account; then renew what came due."""
        roll, acc = self._rng.random(), 0.0
        for weight, operation in _OPERATIONS:
            acc += weight
            if roll < acc:
                operation(self)
                break
        renew_due(self.store)

    def _new_customer(self) -> None:
        store = self.store
        if not self._prices:
            recurring = [e.id for e in store.table("price").entries if e.obj["recurring"]]
            self._prices = recurring or _catalog(store, self._rng, store.now())
        _customer_story(store, self._rng, self._prices, store.now(), store.now(), _Plan())

    def _pick(self, type_: str) -> str | None:
        entries = self.store.table(type_).entries
        return self._rng.choice(entries).id if entries else None

    def _update_customer(self) -> None:
        if (customer := self._pick("customer")) is not None:
            _touch_customer(self.store, self._rng, customer)

    def _change_quantity(self) -> None:
        item = self._pick("subscription_item")
        if item is not None:
            quantity = str(self._rng.randint(1, 9))
            self.store.update("subscription_item", item, {"quantity": quantity})

    def _cancel_subscription(self) -> None:
        live = [
            e for e in self.store.table("subscription").entries if e.obj["status"] != "canceled"
        ]
        if live:
            self.store.delete("subscription", self._rng.choice(live).id)

    def _update_product(self) -> None:
        if (product := self._pick("product")) is not None:
            note = f"Revised {self.store.now()}"
            self.store.update("product", product, {"description": note})

    def _refund(self) -> None:
        charge = self._pick("charge")
        if charge is not None and not self.store.get("charge", charge).obj["refunded"]:
            refund_charge(self.store, charge, None, "requested_by_customer")

    def _invoice(self) -> None:
        if (customer := self._pick("customer")) is not None:
            _one_off_invoice(self.store, self._rng, customer)

    def _delete_customer(self) -> None:
        if (customer := self._pick("customer")) is not None:
            self.store.delete("customer", customer)


_OPERATIONS: tuple[tuple[float, Callable[[LiveTraffic], None]], ...] = (
    (0.25, LiveTraffic._new_customer),
    (0.20, LiveTraffic._update_customer),
    (0.15, LiveTraffic._change_quantity),
    (0.08, LiveTraffic._cancel_subscription),
    (0.05, LiveTraffic._update_product),
    (0.07, LiveTraffic._refund),
    (0.12, LiveTraffic._invoice),
    (0.08, LiveTraffic._delete_customer),
)


def _touch_customer(store: Store, rng: random.Random, customer: str) -> None:
    with store.change("customer", customer) as obj:
        obj["metadata"]["plan_tier"] = rng.choice(("gold", "silver", "bronze"))
        obj["balance"] = rng.randint(-5000, 5000)
