"""Walking Stripe lists: every page of a collection, and every entry of truncated nested lists."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from upsync.sources.stripe.client import Page, StripeHTTP
from upsync.sources.stripe.collections import StripeCollection

__all__ = ["Slice", "complete_nested", "oldest_created", "split", "walk", "walk_slice"]

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


def split(lo: int, hi: int, parts: int) -> list[Slice]:
    """Cut ``[lo, hi)`` into at most ``parts`` slices of (nearly) equal duration, newest first."""
    if hi <= lo:
        return []
    parts = max(1, min(parts, hi - lo))
    bounds = [lo + (hi - lo) * i // parts for i in range(parts + 1)]
    return [Slice(gte=a, lt=b) for a, b in itertools.pairwise(bounds)][::-1]


async def oldest_created(http: StripeHTTP, collection: StripeCollection, below: int) -> int | None:
    """The ``created`` of the collection's oldest object older than ``below`` (binary search).

    Stripe lists newest first and cannot sort the other way, so this probes
    ``created[lt]=t&limit=1`` about log2(seconds) ≈ 30 times — once per backfill.
    """

    async def exists_before(t: int) -> bool:
        params = {**collection.list_params, "limit": 1, "created": {"lt": t}}
        return bool((await http.get(collection.list_path, params)).data)

    if not await exists_before(below):
        return None
    lo, hi = 0, below - 1  # invariant: something exists before hi + 1, nothing before lo
    while lo < hi:
        mid = (lo + hi) // 2
        if await exists_before(mid + 1):
            hi = mid
        else:
            lo = mid + 1
    return lo


async def walk_slice(
    http: StripeHTTP, collection: StripeCollection, piece: Slice
) -> AsyncIterator[Page]:
    """Yield the pages of one slice after ``piece.after``, without changing ``piece``.

    The caller advances the slice (:meth:`Slice.advanced`) once a page is durably written.
    """
    after = piece.after
    while True:
        params: dict[str, Any] = {**collection.list_params, **piece.params(), "limit": PAGE_SIZE}
        if after is not None:
            params["starting_after"] = after
        page = await http.get(collection.list_path, params)
        for obj in page.data:
            await complete_nested(http, collection, obj)
        yield page
        if not page.has_more or not page.data:
            return
        after = str(page.data[-1]["id"])
