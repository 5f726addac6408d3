from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from stripe._encode import _api_encode

from upsync.testing.stripe.errors import StripeError
from upsync.testing.stripe.formdata import Params, decode_pairs


def _decode(query: str) -> dict[str, object]:
    return decode_pairs(parse_qsl(query, keep_blank_values=True))


def test_brackets_decode_into_nested_hashes_and_arrays() -> None:
    got = _decode("items[0][price]=p1&items[1][price]=p2&items[1][quantity]=3&metadata[k]=v")
    assert got == {
        "items": [{"price": "p1"}, {"price": "p2", "quantity": "3"}],
        "metadata": {"k": "v"},
    }


def test_appended_and_indexed_arrays_both_decode() -> None:
    assert _decode("expand[]=a&expand[]=b") == {"expand": ["a", "b"]}
    assert _decode("expand[1]=b&expand[0]=a") == {"expand": ["a", "b"]}


def test_metadata_keys_that_look_like_indexes_stay_a_hash() -> None:
    assert _decode("metadata[0]=zero") == {"metadata": {"0": "zero"}}


def test_what_the_sdk_encodes_decodes_back() -> None:
    params = {
        "customer": "cus_1",
        "items": [{"price": "price_1", "quantity": 2}],
        "metadata": {"a": "1"},
        "expand": ["latest_invoice", "customer"],
        "cancel_at_period_end": True,
        "created": {"gte": 10, "lt": 20},
    }
    query = urlencode(list(_api_encode(params)))
    decoded = Params(_decode(query))
    assert decoded.items("items")[0].integer("quantity") == 2
    assert decoded.boolean("cancel_at_period_end") is True
    assert decoded.array("expand") == ["latest_invoice", "customer"]
    assert decoded.hash("created").integer("lt") == 20


def test_a_malformed_key_is_a_400_naming_it() -> None:
    with pytest.raises(StripeError) as info:
        _decode("items[0=x")
    assert (info.value.status, info.value.param) == (400, "items[0")


def test_a_bad_integer_names_the_full_parameter() -> None:
    with pytest.raises(StripeError) as info:
        Params(_decode("items[0][quantity]=many")).items("items")[0].integer("quantity")
    assert info.value.param == "items[0][quantity]"


def test_empty_metadata_values_delete_keys() -> None:
    merged = Params(_decode("metadata[a]=&metadata[b]=2")).metadata({"a": "1", "c": "3"})
    assert merged == {"b": "2", "c": "3"}
    assert Params(_decode("metadata=")).metadata({"a": "1"}) == {}
