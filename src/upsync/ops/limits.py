"""Size limits on what users store and send, so one bad value cannot bloat every response.

Defaults suit every use we know of; each can be raised through the environment:

- ``UPSYNC_MAX_METADATA_BYTES`` (default 64 KiB): a ``metadata`` object of a stream, sync,
  credential or consumer, as compact JSON;
- ``UPSYNC_MAX_REQUEST_BYTES`` (default 16 MiB): one HTTP request body (a batch of 1,000 acks
  is ~60 KB; Stripe webhooks are at most a few hundred KB);
- names of streams, syncs and consumers: at most :data:`MAX_NAME_LENGTH` characters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import orjson

from upsync.errors import ConfigurationError

__all__ = [
    "MAX_NAME_LENGTH",
    "check_metadata",
    "check_name",
    "max_metadata_bytes",
    "max_request_bytes",
]

MAX_NAME_LENGTH = 200
_DEFAULT_METADATA_BYTES = 64 * 1024
_DEFAULT_REQUEST_BYTES = 16 * 1024 * 1024


def _env_bytes(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{variable}: expected a number of bytes, got {raw!r}") from None
    if value < 1:
        raise ConfigurationError(f"{variable}: expected a positive number of bytes, got {value}")
    return value


def max_metadata_bytes() -> int:
    """The largest ``metadata`` object accepted, in bytes of compact JSON."""
    return _env_bytes("UPSYNC_MAX_METADATA_BYTES", _DEFAULT_METADATA_BYTES)


def max_request_bytes() -> int:
    """The largest HTTP request body the API reads."""
    return _env_bytes("UPSYNC_MAX_REQUEST_BYTES", _DEFAULT_REQUEST_BYTES)


def check_metadata(value: Mapping[str, Any] | None, what: str = "metadata") -> dict[str, Any]:
    """``value`` as a dict if it is a JSON object within the size limit."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what}: expected a JSON object")
    try:
        size = len(orjson.dumps(dict(value)))
    except TypeError as e:
        raise ConfigurationError(f"{what}: not JSON ({e})") from None
    limit = max_metadata_bytes()
    if size > limit:
        raise ConfigurationError(
            f"{what}: {size:,} bytes of JSON is over the limit of {limit:,} "
            "(UPSYNC_MAX_METADATA_BYTES)"
        )
    return dict(value)


def check_name(value: str, what: str = "name") -> str:
    """A non-blank name of at most :data:`MAX_NAME_LENGTH` characters."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what}: expected a non-empty name")
    if len(value) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"{what}: {len(value)} characters is over the limit of {MAX_NAME_LENGTH}"
        )
    return value
