"""Pagination against a naive model: sort everything, then slice."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from upsync.testing.stripe.errors import StripeError
from upsync.testing.stripe.formdata import Params
from upsync.testing.stripe.index import Entry, Index, Key
from upsync.testing.stripe.listing import ListQuery, paginate, parse_list_query


def _index(rng: random.Random, n: int) -> Index:
    index = Index()
    entries = [Entry("customer", {"id": f"cus_{i}"}, (rng.randint(0, 20), i)) for i in range(n)]
    rng.shuffle(entries)
    for entry in entries:
        index.add(entry)
    return index


def _ids(entries: list[Entry]) -> list[str]:
    return [e.obj["id"] for e in entries]


def _walk_forward(index: Index, limit: int) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        page, more = paginate(index, ListQuery(limit, starting_after=after), None, _key(index))
        seen += _ids(page)
        if not more:
            return seen
        after = seen[-1]


def _key(index: Index) -> Callable[[str, str], Key]:
    def key(oid: str, param: str) -> Key:
        found = index.key_of(oid)
        assert found is not None
        return found

    return key


def test_forward_paging_yields_everything_newest_first_once(rng: random.Random) -> None:
    index = _index(rng, 57)
    expected = _ids(sorted(index.entries, key=lambda e: e.key, reverse=True))
    assert _walk_forward(index, rng.randint(1, 10)) == expected


def test_ending_before_gives_the_adjacent_newer_page(rng: random.Random) -> None:
    index = _index(rng, 40)
    newest_first = sorted(index.entries, key=lambda e: e.key, reverse=True)
    pivot = rng.randrange(5, 40)
    limit = rng.randint(1, 8)
    page, more = paginate(
        index, ListQuery(limit, ending_before=newest_first[pivot].obj["id"]), None, _key(index)
    )
    assert _ids(page) == _ids(newest_first[max(0, pivot - limit) : pivot])
    assert more == (pivot - limit > 0)


def test_created_bounds_are_inclusive_or_exclusive_as_named(rng: random.Random) -> None:
    index = _index(rng, 60)
    query = parse_list_query(Params({"limit": "100", "created": {"gt": "5", "lte": "12"}}))
    page, more = paginate(index, query, None, _key(index))
    assert not more
    assert sorted(_ids(page)) == sorted(e.obj["id"] for e in index.entries if 5 < e.key[0] <= 12)
    exact = parse_list_query(Params({"limit": "100", "created": "7"}))
    page, _ = paginate(index, exact, None, _key(index))
    assert {e.key[0] for e in page} <= {7}


def test_a_predicate_filters_without_breaking_has_more(rng: random.Random) -> None:
    index = _index(rng, 30)
    even = [
        e for e in sorted(index.entries, key=lambda e: e.key, reverse=True) if e.key[1] % 2 == 0
    ]
    page, more = paginate(index, ListQuery(15), lambda e: e.key[1] % 2 == 0, _key(index))
    assert _ids(page) == _ids(even) and not more


@pytest.mark.parametrize("limit", ["0", "101", "-3"], ids=["zero", "above-100", "negative"])
def test_limit_out_of_range_is_a_400_naming_limit(limit: str) -> None:
    with pytest.raises(StripeError) as info:
        parse_list_query(Params({"limit": limit}))
    assert (info.value.status, info.value.param) == (400, "limit")


def test_both_cursors_at_once_are_refused() -> None:
    with pytest.raises(StripeError):
        parse_list_query(Params({"starting_after": "a", "ending_before": "b"}))
