"""Walking Stripe lists: every page of a collection, and every entry of truncated nested lists."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from upsync.sources.stripe.client import Page, StripeHTTP
from upsync.sources.stripe.collections import StripeCollection

__all__ = ["complete_nested", "walk"]

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
