"""Walking Stripe lists: every page of a collection, and every entry of truncated nested lists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from upsync.sources.stripe.client import Page, StripeHTTP
from upsync.sources.stripe.collections import StripeCollection

__all__ = ["Slice", "complete_nested", "read_page", "walk"]

PAGE_SIZE = 100


async def walk(
    http: StripeHTTP, collection: StripeCollection, after: str | None = None
) -> AsyncIterator[Page]:
    """Yield each page of ``collection``, newest first, resuming after object id ``after``.

    Nested lists in the yielded objects are complete (see :func:`complete_nested`).
    """
    while True:
        params: dict[str, Any] = {**collection.list_params, "limit": PAGE_SIZE}
        if after is not None:
            params["starting_after"] = after
        page = await http.get(collection.list_path, params)
        for obj in page.data:
            await complete_nested(http, collection, obj)
        yield page
        if not page.has_more or not page.data:
            return
        after = str(page.data[-1]["id"])


async def complete_nested(
    http: StripeHTTP, collection: StripeCollection, obj: dict[str, Any]
) -> None:
    """Fill in embedded lists Stripe truncated (``has_more``) by paging their ``url``, in place.

    Stripe embeds at most 10 subscription items or invoice lines; a snapshot with a partial
    list would silently drop the rest in users' tables.
    """
    for name in collection.nested_lists:
        nested = obj.get(name)
        if not isinstance(nested, Mapping) or not nested.get("has_more"):
            continue
        entries = list(nested.get("data") or [])
        url = str(nested["url"])
        while True:
            params: dict[str, Any] = {"limit": PAGE_SIZE}
            if entries:
                params["starting_after"] = entries[-1]["id"]
            page = await http.get(url, params)
            http.nested_requests += 1
            entries.extend(page.data)
            if not page.has_more or not page.data:
                break
        obj[name] = {**nested, "data": entries, "has_more": False}


@dataclass
class Slice:
    """A ``created`` range of one collection, walked on its own: ``gte <= created < lt``."""

    gte: int | None = None
    lt: int | None = None
    after: str | None = None
    count: int = 0
    done: bool = False

    def params(self) -> dict[str, Any]:
        """The list filter for this slice."""
        created = {k: v for k, v in (("gte", self.gte), ("lt", self.lt)) if v is not None}
        return {"created": created} if created else {}

    def advanced(self, page: Page) -> Slice:
        """This slice after ``page`` of it was written."""
        after = str(page.data[-1]["id"]) if page.data else self.after
        done = not page.has_more or not page.data
        return Slice(self.gte, self.lt, after, self.count + len(page.data), done)

    def to_state(self) -> dict[str, Any]:
        """JSON-able form, for the sync's stored cursors."""
        return {
            "gte": self.gte,
            "lt": self.lt,
            "after": self.after,
            "count": self.count,
            "done": self.done,
        }


async def read_page(http: StripeHTTP, collection: StripeCollection, piece: Slice) -> Page:
    """The next page of a slice (after ``piece.after``), nested lists completed.

    One page at a time, from the slice as it is now: a walker's slice can shrink between
    pages when its older half is handed to another walker.
    """
    params: dict[str, Any] = {**collection.list_params, **piece.params(), "limit": PAGE_SIZE}
    if piece.after is not None:
        params["starting_after"] = piece.after
    page = await http.get(collection.list_path, params)
    for obj in page.data:
        await complete_nested(http, collection, obj)
    return page
