"""Stripe object ids, checked before they become part of a request path.

Ids reach the source from places it does not control: event payloads (signed webhooks
included: a valid signature says who sent an event, not that its id is well-formed), related
objects named inside those payloads, stored cursors. An id is put into a URL only through
:func:`path_segment`, which refuses anything outside :data:`ID_PATTERN` and percent-encodes the
rest anyway, so no id can add a path segment, a query or a ``..``.

Stripe's generated ids are ``<prefix>_<alphanumerics>`` (``cus_NffrFeUfNV2Hib``); a few objects
(products, plans, coupons) take ids chosen by the account, which Stripe limits to letters,
digits, ``_``, ``-`` and ``.``. The pattern admits those, starting with a letter or digit (so
never ``.`` or ``..``), at most 255 characters.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from upsync.errors import UpstreamRejected

__all__ = ["ID_PATTERN", "InvalidObjectId", "is_object_id", "path_segment"]

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}")


class InvalidObjectId(UpstreamRejected):
    """An id that cannot be a Stripe object id: nothing is requested or written for it."""

    def __init__(self, value: object) -> None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        super().__init__(f"{shown} is not a Stripe object id", status=400)


def is_object_id(value: object) -> bool:
    """Whether ``value`` is a string shaped like a Stripe object id (see :data:`ID_PATTERN`)."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def path_segment(value: object) -> str:
    """``value`` as one URL path segment; raises :class:`InvalidObjectId` unless it is an id."""
    if not is_object_id(value):
        raise InvalidObjectId(value)
    assert isinstance(value, str)
    # the pattern leaves nothing to escape; quoting anyway keeps this safe if it is widened
    return quote(value, safe="")
