"""Every user-facing operation, once: streams, credentials, syncs, consumers, status.

The HTTP API, the CLI and ``upsync demo`` are thin views over this package: they parse their
input, call one operation and render its typed result; the rules (validation, defaults, what a
delete removes) live here, so the same operation has the same outcome through every door.

Each operation takes an open async psycopg connection and upsync's schema name, and runs in
one transaction (a savepoint when the caller already has one open).
"""

from upsync.ops import consumers, credentials, health, limits, providers, status, streams, syncs
from upsync.ops.consumers import ConsumerView, NewConsumer
from upsync.ops.credentials import NewCredential
from upsync.ops.health import SyncState
from upsync.ops.status import Overview, overview
from upsync.ops.syncs import NewSync, SyncView

__all__ = [
    "ConsumerView",
    "NewConsumer",
    "NewCredential",
    "NewSync",
    "Overview",
    "SyncState",
    "SyncView",
    "consumers",
    "credentials",
    "health",
    "limits",
    "overview",
    "providers",
    "status",
    "streams",
    "syncs",
]
