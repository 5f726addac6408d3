"""The HTTP API's side of bearer tokens: reading the ``Authorization`` header.

Tokens are created, listed, revoked and verified by :mod:`upsync.ops.tokens`.
"""

from __future__ import annotations

from upsync.errors import Unauthorized

__all__ = ["bearer_token"]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header; :class:`Unauthorized` otherwise."""
    if not authorization:
        raise Unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>' "
            "(create a token with `upsync token create`)"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()
