"""Bearer tokens for the HTTP API: created once, stored hashed, revoked by name (one
operation for the CLI, the API and tests; the API only checks them, in :mod:`upsync.api.auth`).

A token is ``upsync_tok_`` followed by 32 random bytes (urlsafe base64). Only its SHA-256 is
stored: the tokens are high-entropy, so a plain hash cannot be brute-forced and lets a request be
checked with one indexed lookup. The clear token is returned once, by :func:`create_token`.

The table ``api_tokens`` is migration 4 of :mod:`upsync.stream.migrations`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from upsync.errors import ConfigurationError, NotFound, Unauthorized
from upsync.stream.migrations import migrate
from upsync.stream.migrations import migrate_sync as _migrate_sync

__all__ = [
    "TOKEN_PREFIX",
    "TokenInfo",
    "create_token",
    "create_token_sync",
    "ensure_api_schema",
    "ensure_api_schema_sync",
    "hash_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

TOKEN_PREFIX = "upsync_tok_"

AConn = psycopg.AsyncConnection[Any]
Conn = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: never its value or hash."""

    name: str
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
        }


def hash_token(token: str) -> bytes:
    """What is stored for ``token``."""
    return hashlib.sha256(token.encode()).digest()


def _q(schema: str, text: str) -> sql.Composed:
    return sql.SQL(text).format(schema=sql.Identifier(schema))


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ConfigurationError("token name: expected a non-empty string of at most 200 chars")
    return name


_INSERT = (
    "INSERT INTO {schema}.api_tokens (name, token_hash) VALUES (%s, %s) "
    "ON CONFLICT DO NOTHING RETURNING id"
)
_LIST = "SELECT name, created_at, revoked_at FROM {schema}.api_tokens ORDER BY created_at, name"
_REVOKE = "UPDATE {schema}.api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL"
_VERIFY = "SELECT name FROM {schema}.api_tokens WHERE token_hash = %s AND revoked_at IS NULL"


def _new_token(name: str) -> tuple[str, list[Any]]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, [_check_name(name), hash_token(token)]


def _duplicate(name: str) -> ConfigurationError:
    return ConfigurationError(f"an active token named {name!r} already exists; revoke it first")


async def ensure_api_schema(conn: AConn, *, schema: str = "upsync") -> None:
    """Apply upsync's migrations (the token table is migration 4) on an idle connection."""
    await migrate(conn, schema=schema)


def ensure_api_schema_sync(conn: Conn, *, schema: str = "upsync") -> None:
    """:func:`ensure_api_schema` for a synchronous connection (the CLI)."""
    _migrate_sync(conn, schema=schema)


async def create_token(conn: AConn, name: str, *, schema: str = "upsync") -> str:
    """Create a token named ``name`` and return it in clear: the only time it is shown.

    Raises :class:`~upsync.errors.ConfigurationError` if an active token has that name.
    """
    token, params = _new_token(name)
    async with conn.transaction():
        cur = await conn.execute(_q(schema, _INSERT), params)
        if await cur.fetchone() is None:
            raise _duplicate(name)
    return token


def create_token_sync(conn: Conn, name: str, *, schema: str = "upsync") -> str:
    """:func:`create_token` for a synchronous connection."""
    token, params = _new_token(name)
    with conn.transaction():
        if conn.execute(_q(schema, _INSERT), params).fetchone() is None:
            raise _duplicate(name)
    return token


async def list_tokens(conn: AConn, *, schema: str = "upsync") -> list[TokenInfo]:
    """Every token, active and revoked, oldest first."""
    cur = await conn.execute(_q(schema, _LIST))
    return [TokenInfo(*row) for row in await cur.fetchall()]


async def revoke_token(conn: AConn, name: str, *, schema: str = "upsync") -> None:
    """Revoke the active token named ``name``; :class:`~upsync.errors.NotFound` if none."""
    async with conn.transaction():
        cur = await conn.execute(_q(schema, _REVOKE), [name])
    if cur.rowcount == 0:
        raise NotFound(f"no active token named {name!r}")


async def verify_token(conn: AConn, token: str, *, schema: str = "upsync") -> str:
    """The name of the active token ``token``; :class:`~upsync.errors.Unauthorized` if none."""
    cur = await conn.execute(_q(schema, _VERIFY), [hash_token(token)])
    row = await cur.fetchone()
    if row is None:
        raise Unauthorized("bearer token not recognised (unknown or revoked)")
    name: str = row[0]
    return name
