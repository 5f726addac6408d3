"""Syncs with their credentials: create, read, change, pause/resume, delete.

A sync can be given an API key (and a webhook signing secret): each is stored as a credential
*owned by the sync* — marked in the credential's metadata — and deleted with it, unless another
sync uses it too. A sync created with an existing ``credential_id`` leaves that credential alone
when deleted: it was created on its own and may be meant for more.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upsync.errors import ConfigurationError, NotFound
from upsync.ops.health import SyncState, sync_state
from upsync.ops.limits import check_metadata, check_name
from upsync.ops.progress import backfill_progress, events_through
from upsync.ops.providers import check_api_key, check_webhook_secret, collection_ids
from upsync.ops.streams import resolve_stream
from upsync.sources.stripe.source import SourceStatus
from upsync.stream import catalog
from upsync.stream.models import (
    WEBHOOK_CREDENTIAL_KEY,
    Credential,
    Sync,
    webhook_credential_ids,
)
from upsync.stream.tables import DEFAULT_SCHEMA, AConn

__all__ = [
    "OWNED_BY_SYNC",
    "NewSync",
    "SyncView",
    "create_sync",
    "delete_sync",
    "get_sync",
    "list_syncs",
    "set_status",
    "show_sync",
    "sync_view",
    "update_sync",
]

#: credential metadata key marking a credential created with (and deleted with) a sync
OWNED_BY_SYNC = "owned_by_sync"
_LEGACY_OWNER = ("created_by", "upsync syncs create")  # what the CLI marked before 0.2


@dataclass(frozen=True)
class NewSync:
    """What a new sync needs. Give exactly one of ``api_key`` (a new credential, owned by the
    sync) or ``credential_id`` (an existing one)."""

    provider: str
    stream: str
    collection_ids: Sequence[str]
    name: str | None = None
    api_key: str | None = field(default=None, repr=False)
    credential_id: str | None = None
    credential_name: str | None = None
    credential_metadata: Mapping[str, Any] = field(default_factory=dict)
    webhook_secret: str | None = field(default=None, repr=False)
    external_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    rate_limit: Mapping[str, Any] | None = None
    max_age_days: int | None = None
    status: str = "active"


@dataclass(frozen=True)
class SyncView:
    """A sync as every door shows it: settings, credential (masked), progress and state."""

    sync: Sync
    credential: Credential | None
    state: SyncState

    def to_dict(self) -> dict[str, Any]:
        out = self.sync.to_dict()
        out["credential"] = None if self.credential is None else self.credential.to_dict()
        out["state"] = self.state.to_dict()
        out["backfill"] = backfill_progress(self.sync)
        out["events_through"] = events_through(self.sync)
        return out


def _check_new(new: NewSync) -> tuple[list[str], dict[str, Any]]:
    ids = collection_ids(new.provider, new.collection_ids)
    if (new.api_key is None) == (new.credential_id is None):
        raise ConfigurationError("give exactly one of an API key or credential_id")
    if new.api_key is not None:
        check_api_key(new.provider, new.api_key)
    if new.webhook_secret is not None:
        check_webhook_secret(new.webhook_secret)
    if new.name is not None:
        check_name(new.name)
    return ids, check_metadata(new.metadata)


async def create_sync(conn: AConn, new: NewSync, *, schema: str = DEFAULT_SCHEMA) -> SyncView:
    """Create a sync (and the credentials it is given) in one transaction."""
    ids, metadata = _check_new(new)
    name = new.name or new.external_id or new.provider
    async with conn.transaction():
        stream = await resolve_stream(conn, new.stream, schema=schema)
        credential_id = new.credential_id
        owned = {
            **check_metadata(new.credential_metadata, "credential.metadata"),
            OWNED_BY_SYNC: True,
        }
        if new.api_key is not None:
            cred = await catalog.create_credential(
                conn,
                provider=new.provider,
                kind=f"{new.provider}_key",
                secret=new.api_key,
                name=new.credential_name or f"API key of {name}",
                test="_test_" in new.api_key,
                metadata=owned,
                schema=schema,
            )
            credential_id = cred.id
        if new.webhook_secret is not None:
            hook = await catalog.create_credential(
                conn,
                provider=new.provider,
                kind=f"{new.provider}_webhook_secret",
                secret=new.webhook_secret,
                name=f"webhook secret of {name}",
                metadata=owned,
                schema=schema,
            )
            metadata[WEBHOOK_CREDENTIAL_KEY] = hook.id
        sync = await catalog.create_sync(
            conn,
            stream_id=stream.id,
            provider=new.provider,
            name=name,
            collection_ids=ids,
            external_id=new.external_id,
            metadata=metadata,
            credential_id=credential_id,
            rate_limit=new.rate_limit,
            max_age_days=new.max_age_days,
            status=new.status,
            schema=schema,
        )
    return await sync_view(conn, sync, schema=schema)


async def sync_view(
    conn: AConn, sync: Sync, *, live: SourceStatus | None = None, schema: str = DEFAULT_SCHEMA
) -> SyncView:
    """``sync`` with its credential and state (live when ``live`` is given)."""
    credential = None
    if sync.credential_id:
        with contextlib.suppress(NotFound):
            credential = await catalog.get_credential(conn, sync.credential_id, schema=schema)
    return SyncView(sync, credential, sync_state(sync, live))


async def show_sync(
    conn: AConn,
    id_or_name: str,
    *,
    live: SourceStatus | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> SyncView:
    """The sync with that id or name, as every door shows it."""
    sync = await get_sync(conn, id_or_name, schema=schema)
    return await sync_view(conn, sync, live=live, schema=schema)


async def get_sync(conn: AConn, id_or_name: str, *, schema: str = DEFAULT_SCHEMA) -> Sync:
    """The sync with that id, or the one sync with that name."""
    if _is_uuid(id_or_name):
        return await catalog.get_sync(conn, id_or_name, schema=schema)
    found = await catalog.list_syncs(conn, name=id_or_name, schema=schema)
    if not found:
        raise NotFound(f"sync {id_or_name!r} not found (give its id or name)")
    if len(found) > 1:
        ids = ", ".join(s.id for s in found)
        raise ConfigurationError(f"{len(found)} syncs are named {id_or_name!r}: use an id ({ids})")
    return found[0]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def list_syncs(
    conn: AConn,
    *,
    stream: str | None = None,
    provider: str | None = None,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> list[Sync]:
    """Syncs, oldest first; each given filter must match (``metadata`` by containment)."""
    stream_id = None if stream is None else (await resolve_stream(conn, stream, schema=schema)).id
    return await catalog.list_syncs(
        conn, stream_id=stream_id, provider=provider, name=name, metadata=metadata, schema=schema
    )


async def update_sync(
    conn: AConn, id_or_name: str, changes: Mapping[str, Any], *, schema: str = DEFAULT_SCHEMA
) -> Sync:
    """Change the given settings (``name``, ``collection_ids``, ``credential_id``,
    ``external_id``, ``metadata``, ``rate_limit``, ``status``); the others keep their values."""
    values = dict(changes)
    sync = await get_sync(conn, id_or_name, schema=schema)
    if "collection_ids" in values:
        values["collection_ids"] = collection_ids(sync.provider, values["collection_ids"])
    if "metadata" in values:
        values["metadata"] = check_metadata(values["metadata"])
    if "name" in values:
        check_name(values["name"])
    return await catalog.update_sync(conn, sync.id, **values, schema=schema)


async def set_status(
    conn: AConn, id_or_name: str, status: str, *, schema: str = DEFAULT_SCHEMA
) -> Sync:
    """Pause (``disabled``) or resume (``active``) a sync; its progress is kept."""
    return await update_sync(conn, id_or_name, {"status": status}, schema=schema)


async def delete_sync(conn: AConn, id_or_name: str, *, schema: str = DEFAULT_SCHEMA) -> Sync:
    """Delete a sync and the credentials it owns (unless another sync uses one).

    Its records stay in the stream: consumers may still need them.
    """
    async with conn.transaction():
        sync = await get_sync(conn, id_or_name, schema=schema)
        await catalog.delete_sync(conn, sync.id, schema=schema)
        candidates = [sync.credential_id] if sync.credential_id else []
        candidates += webhook_credential_ids(sync.metadata)
        for credential_id in candidates:
            await _delete_if_owned(conn, credential_id, schema)
    return sync


async def _delete_if_owned(conn: AConn, credential_id: str, schema: str) -> None:
    try:
        cred = await catalog.get_credential(conn, credential_id, schema=schema)
    except NotFound:
        return
    key, value = _LEGACY_OWNER
    if cred.metadata.get(OWNED_BY_SYNC) is True or cred.metadata.get(key) == value:
        # still used by another sync (the same key given twice): keep it
        with contextlib.suppress(ConfigurationError):
            await catalog.delete_credential(conn, cred.id, schema=schema)
