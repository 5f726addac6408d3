"""Every object type the stand-in serves, one :class:`~..resource.Resource` each."""

from __future__ import annotations

from ..resource import Resource
from . import (
    accounts,
    balance,
    catalog,
    checkout,
    credit_notes,
    customers,
    disputes,
    endpoints,
    invoices,
    payments,
    subscriptions,
)

__all__ = ["REGISTRY"]

REGISTRY: dict[str, Resource] = {
    r.object: r
    for module in (
        customers,
        catalog,
        subscriptions,
        invoices,
        credit_notes,
        payments,
        disputes,
        balance,
        checkout,
        endpoints,
        accounts,
    )
    for r in module.RESOURCES
}
