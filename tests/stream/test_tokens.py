"""Ack tokens: opaque, bound to one consumer, decoded without a database."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upsync.errors import InvalidAckToken
from upsync.stream.tokens import AckToken, decode

CONSUMER = str(uuid.uuid4())


@given(st.uuids(), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_a_token_round_trips_for_its_consumer(rid: uuid.UUID, did: int, idx: int) -> None:
    token = AckToken(CONSUMER, str(rid), did, idx)
    assert decode(token.encode(), CONSUMER) == token


def test_a_token_is_refused_by_another_consumer() -> None:
    token = AckToken(CONSUMER, str(uuid.uuid4()), 1, 1).encode()
    with pytest.raises(InvalidAckToken, match="another consumer"):
        decode(token, str(uuid.uuid4()))


@given(st.text(max_size=80))
def test_arbitrary_text_is_refused_or_decodes_to_a_valid_token(text: str) -> None:
    try:
        decode(text, CONSUMER)
    except InvalidAckToken as e:
        assert "ack token" in str(e)


def test_a_long_token_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidAckToken) as err:
        decode("A" * 500, CONSUMER)
    assert len(str(err.value)) < 120
