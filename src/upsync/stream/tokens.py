"""Ack tokens: opaque to clients, checked against the database on use.

A token names one delivery: the consumer, the record, the delivery id (a fresh number from a
sequence for every delivery, so a token from an earlier delivery of the same record no longer
matches) and the ``updated_idx`` of the version that delivery carried. Decoding is pure; whether
the delivery is still the current one is decided by :mod:`upsync.stream.delivery`.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from dataclasses import dataclass

from upsync.errors import InvalidAckToken

_VERSION = 1
_LAYOUT = struct.Struct(">B16s16sqq")


@dataclass(frozen=True, slots=True)
class AckToken:
    """The decoded content of an ack token."""

    consumer_id: str
    record_id: str
    delivery_id: int
    updated_idx: int

    def encode(self) -> str:
        raw = _LAYOUT.pack(
            _VERSION,
            uuid.UUID(self.consumer_id).bytes,
            uuid.UUID(self.record_id).bytes,
            self.delivery_id,
            self.updated_idx,
        )
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: object, consumer_id: str) -> AckToken:
    """Decode ``token`` and check it belongs to ``consumer_id``; :class:`InvalidAckToken` if not."""
    if not isinstance(token, str) or not token:
        raise InvalidAckToken(f"ack token {_show(token)} is not a non-empty string")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, cid, rid, delivery_id, idx = _LAYOUT.unpack(raw)
    except (binascii.Error, struct.error, ValueError):
        raise InvalidAckToken(f"ack token {_show(token)} is malformed") from None
    if version != _VERSION:
        raise InvalidAckToken(f"ack token {_show(token)} has unknown version {version}")
    decoded = AckToken(str(uuid.UUID(bytes=cid)), str(uuid.UUID(bytes=rid)), delivery_id, idx)
    if decoded.consumer_id != consumer_id:
        raise InvalidAckToken(
            f"ack token {_show(token)} belongs to another consumer, not {consumer_id}"
        )
    return decoded


def _show(token: object) -> str:
    text = repr(token)
    return text if len(text) <= 24 else text[:20] + "...'"
