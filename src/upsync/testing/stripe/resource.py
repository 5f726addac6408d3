"""The table-driven description of each Stripe object type the stand-in serves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .formdata import Params
    from .store import Store

__all__ = ["Filter", "Resource", "Sublist"]

Create = Callable[["Store", "Params"], dict[str, Any]]
"""Builds and inserts a new object from create parameters; returns the raw object."""
Update = Callable[["Store", dict[str, Any], "Params"], None]
"""Applies update parameters to the raw object (inside :meth:`Store.change`)."""
Action = Callable[["Store", str, "Params"], None]
"""A ``POST /v1/<path>/{id}/<action>`` operation on the object with that id."""
Delete = Callable[["Store", str], dict[str, Any]]
"""A ``DELETE``; returns the response body."""


@dataclass(frozen=True)
class Filter:
    """A list parameter that keeps objects whose ``field`` equals it (``kind`` coerces)."""

    param: str
    field: str
    kind: str = "str"  # "str" | "bool" | "int" | "in" (array param, e.g. ids[])


@dataclass(frozen=True)
class Sublist:
    """An embedded list (``subscription.items``) and its own endpoint.

    ``child`` objects whose ``fk`` field names the parent; the list's ``url`` is
    ``url`` formatted with the parent id.
    """

    child: str
    fk: str
    url: str


@dataclass(frozen=True)
class Resource:
    """One object type: wire names, id prefix, events and operations.

    ``events`` is the event-name stem (``customer.subscription``); ``None`` emits none.
    ``parents`` are foreign-key fields indexed for fast ``?field=id`` lists and sublists.
    """

    object: str
    path: str | None
    prefix: str
    events: str | None = None
    create: Create | None = None
    update: Update | None = None
    updatable: dict[str, str] = field(default_factory=dict)
    delete: Delete | None = None
    actions: dict[str, Action] = field(default_factory=dict)
    filters: tuple[Filter, ...] = ()
    list_hook: Callable[[Store, Params], Callable[[dict[str, Any]], bool] | None] | None = None
    parents: tuple[str, ...] = ()
    sublists: dict[str, Sublist] = field(default_factory=dict)
    render: Callable[[Store, dict[str, Any]], None] | None = None
    required_filter: str | None = None
