"""Credentials (API keys, webhook signing secrets): stored, listed masked, never returned."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upsync.ops.limits import check_metadata
from upsync.ops.providers import PROVIDERS, check_api_key, check_webhook_secret
from upsync.stream import catalog
from upsync.stream.models import Credential
from upsync.stream.tables import DEFAULT_SCHEMA, AConn

__all__ = [
    "NewCredential",
    "create_credential",
    "delete_credential",
    "get_credential",
    "list_credentials",
]


@dataclass(frozen=True)
class NewCredential:
    """A secret to store. ``kind`` is ``<provider>_key`` or ``<provider>_webhook_secret``."""

    kind: str
    secret: str = field(repr=False)
    provider: str | None = None
    name: str | None = None
    test: bool | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def provider_name(self) -> str:
        return self.provider or self.kind.partition("_")[0]


def _check_secret(new: NewCredential) -> None:
    provider = new.provider_name
    if provider not in PROVIDERS:
        return  # a secret for something upsync does not sync itself: stored as given
    if new.kind == f"{provider}_key":
        check_api_key(provider, new.secret)
    elif new.kind == f"{provider}_webhook_secret":
        check_webhook_secret(new.secret)
    # other kinds (a user's own) are stored as given


async def create_credential(
    conn: AConn, new: NewCredential, *, schema: str = DEFAULT_SCHEMA
) -> Credential:
    """Store a credential after checking the secret has its kind's form."""
    _check_secret(new)
    test = new.test if new.test is not None else "_test_" in new.secret
    return await catalog.create_credential(
        conn,
        provider=new.provider_name,
        kind=new.kind,
        secret=new.secret,
        name=new.name,
        test=test,
        metadata=check_metadata(new.metadata),
        schema=schema,
    )


async def list_credentials(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> list[Credential]:
    """Every credential, masked."""
    return await catalog.list_credentials(conn, schema=schema)


async def get_credential(
    conn: AConn, credential_id: str, *, schema: str = DEFAULT_SCHEMA
) -> Credential:
    """One credential, masked."""
    return await catalog.get_credential(conn, credential_id, schema=schema)


async def delete_credential(
    conn: AConn, credential_id: str, *, schema: str = DEFAULT_SCHEMA
) -> Credential:
    """Delete a credential no sync uses."""
    credential = await catalog.get_credential(conn, credential_id, schema=schema)
    await catalog.delete_credential(conn, credential.id, schema=schema)
    return credential
