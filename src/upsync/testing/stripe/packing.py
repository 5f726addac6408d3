"""How the store keeps objects: compact JSON, deflated against a dictionary of Stripe shapes.

A Stripe object held as Python dicts takes 3–5 times its JSON's size, and a demo account
holds hundreds of thousands of objects and events, so the store keeps bytes and decodes on
read. Objects of one type repeat the same keys and most values (``"object": "invoice"``,
``"currency": "usd"``, nulls), so each is deflated with a preset dictionary made of Stripe's
own sample objects: 3–4 times smaller than the JSON, where deflating alone gives 2–2.5.
"""

from __future__ import annotations

import functools
import zlib
from typing import Any

import orjson

__all__ = ["pack", "unpack", "unpack_json"]

_LEVEL = 1
"""deflate's fastest level: the dictionary, not the effort, makes the ratio"""

_DICTIONARY_TYPES = (
    "checkout.session",
    "refund",
    "price",
    "product",
    "line_item",
    "subscription_item",
    "balance_transaction",
    "payment_method",
    "setup_intent",
    "customer",
    "invoiceitem",
    "event",
    "payment_intent",
    "subscription",
    "charge",
    "invoice",
)
"""sample objects in the dictionary, the most common last (deflate reaches near ones cheaper)"""


@functools.cache
def _dictionary() -> bytes:
    from .spec import vendored_fixtures

    fixtures = vendored_fixtures()
    joined = b"".join(orjson.dumps(fixtures[t]) for t in _DICTIONARY_TYPES)
    return joined[-32768:]  # deflate's window: earlier bytes could never be referenced


@functools.cache
def _primed() -> tuple[Any, Any]:
    """A deflater and an inflater with the dictionary loaded, to copy for each object.

    Loading a dictionary costs more than deflating a typical object; copying a loaded state
    costs less. Raw deflate (negative window bits): no header or checksum per object.
    """
    dictionary = _dictionary()
    deflater = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15, 8, zdict=dictionary)
    inflater = zlib.decompressobj(-15, zdict=dictionary)
    return deflater, inflater


def pack(obj: dict[str, Any]) -> bytes:
    """``obj`` as deflated JSON (a bytes object of exactly its size)."""
    deflate = _primed()[0].copy()
    return bytes(deflate.compress(orjson.dumps(obj)) + deflate.flush())


def unpack_json(packed: bytes) -> bytes:
    """The JSON of a packed object."""
    inflate = _primed()[1].copy()
    return bytes(inflate.decompress(packed) + inflate.flush())


def unpack(packed: bytes) -> dict[str, Any]:
    """A packed object, decoded (a fresh copy each call)."""
    decoded: dict[str, Any] = orjson.loads(unpack_json(packed))
    return decoded
