"""List pagination as Stripe does it: pure functions over an :class:`Index`.

Lists are newest first. ``starting_after=X`` gives the objects older than X; ``ending_before=X``
the ``limit`` objects just newer than X, still newest first (stripe-python walks backwards
with ``ending_before=data[0].id``). ``created`` takes an integer or ``gt/gte/lt/lte``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import invalid_request
from .formdata import Params
from .index import Entry, Index, Key

__all__ = ["ListQuery", "paginate", "parse_list_query"]

Predicate = Callable[[Entry], bool]


@dataclass(frozen=True)
class ListQuery:
    """The parameters every list endpoint shares."""

    limit: int = 10
    starting_after: str | None = None
    ending_before: str | None = None
    created_gte: int | None = None
    created_lte: int | None = None


def parse_list_query(params: Params) -> ListQuery:
    """Read ``limit``, the cursors and ``created``; out-of-range values are 400s."""
    limit = params.integer("limit", 10)
    assert limit is not None
    if not 1 <= limit <= 100:
        raise invalid_request(
            "This value must be greater than or equal to 1 and less than or equal to 100."
            if limit < 1
            else "This value must be less than or equal to 100.",
            param="limit",
            code="parameter_invalid_integer",
        )
    after, before = params.string("starting_after"), params.string("ending_before")
    if after and before:
        raise invalid_request(
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    gte, lte = _created_range(params)
    return ListQuery(limit, after, before, gte, lte)


def _created_range(params: Params) -> tuple[int | None, int | None]:
    raw = params.raw("created")
    if raw is None or raw == "":
        return None, None
    if not isinstance(raw, dict):
        exact = params.integer("created")
        return exact, exact
    rng = params.hash("created")
    unknown = set(rng.data) - {"gt", "gte", "lt", "lte"}
    if unknown:
        name = rng.name(sorted(unknown)[0])
        raise invalid_request(f"Received unknown parameter: {name}", param=name)
    lows = [v for v in (rng.integer("gte"), _shift(rng.integer("gt"), 1)) if v is not None]
    highs = [v for v in (rng.integer("lte"), _shift(rng.integer("lt"), -1)) if v is not None]
    return (max(lows) if lows else None), (min(highs) if highs else None)


def _shift(value: int | None, by: int) -> int | None:
    return None if value is None else value + by


def paginate(
    index: Index,
    query: ListQuery,
    predicate: Predicate | None,
    cursor_key: Callable[[str, str], Key],
) -> tuple[list[Entry], bool]:
    """One page (newest first) and whether more objects lie beyond it in that direction.

    ``cursor_key(object_id, param)`` returns the sort key of a cursor object (or raises).
    """
    start, stop = index.bounds(query.created_gte, query.created_lte)
    if query.ending_before is not None:
        pos = index.position(cursor_key(query.ending_before, "ending_before"))
        # skip the cursor object itself when present at pos
        lo = max(start, pos + 1 if _at(index, pos, query.ending_before) else pos)
        found = _scan(index, range(lo, stop), predicate, query.limit + 1)
        return list(reversed(found[: query.limit])), len(found) > query.limit
    hi = stop
    if query.starting_after is not None:
        hi = min(stop, index.position(cursor_key(query.starting_after, "starting_after")))
    found = _scan(index, range(hi - 1, start - 1, -1), predicate, query.limit + 1)
    return found[: query.limit], len(found) > query.limit


def _at(index: Index, pos: int, oid: str) -> bool:
    return pos < len(index.entries) and index.entries[pos].id == oid


def _scan(index: Index, positions: range, predicate: Predicate | None, want: int) -> list[Entry]:
    out: list[Entry] = []
    entries = index.entries
    for i in positions:
        entry = entries[i]
        if predicate is None or predicate(entry):
            out.append(entry)
            if len(out) == want:
                break
    return out
