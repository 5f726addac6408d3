"""upsync's record stream and its consumers, over Postgres.

Connection-level functions (they take a psycopg ``AsyncConnection`` and a ``schema``) for use
inside your own transactions, and :class:`StreamService`, the same operations over a pool, one
method per endpoint of Sequin's HTTP API. See ``docs/stream.md``.
"""

from upsync.stream.catalog import (
    create_credential,
    create_stream,
    create_sync,
    delete_credential,
    delete_stream,
    delete_sync,
    get_credential,
    get_stream,
    get_sync,
    list_credentials,
    list_streams,
    list_syncs,
    reveal_secret,
    update_sync,
)
from upsync.stream.clock import Clock, ManualClock, db_clock
from upsync.stream.consumers import (
    create_consumer,
    delete_consumer,
    get_consumer,
    list_consumers,
    rewind,
    update_consumer,
)
from upsync.stream.delivery import (
    Claimed,
    ack,
    claim,
    info,
    list_dead_letters,
    nack,
    replay_dead_letters,
)
from upsync.stream.managed import (
    BatchOutcome,
    create_managed_table,
    deliver_batch,
    managed_table_apply,
)
from upsync.stream.migrations import MIGRATIONS, migrate, migrate_sync
from upsync.stream.models import (
    Batch,
    Consumer,
    ConsumerInfo,
    Credential,
    DeadLetter,
    Event,
    EventPage,
    Filters,
    RecordPage,
    Stream,
    Sync,
    UpstreamObject,
    WriteResult,
    deletion,
)
from upsync.stream.pages import events_page, records_page
from upsync.stream.service import StreamService
from upsync.stream.write import write

__all__ = [
    "MIGRATIONS",
    "Batch",
    "BatchOutcome",
    "Claimed",
    "Clock",
    "Consumer",
    "ConsumerInfo",
    "Credential",
    "DeadLetter",
    "Event",
    "EventPage",
    "Filters",
    "ManualClock",
    "RecordPage",
    "Stream",
    "StreamService",
    "Sync",
    "UpstreamObject",
    "WriteResult",
    "ack",
    "claim",
    "create_consumer",
    "create_credential",
    "create_managed_table",
    "create_stream",
    "create_sync",
    "db_clock",
    "delete_consumer",
    "delete_credential",
    "delete_stream",
    "delete_sync",
    "deletion",
    "deliver_batch",
    "events_page",
    "get_consumer",
    "get_credential",
    "get_stream",
    "get_sync",
    "info",
    "list_consumers",
    "list_credentials",
    "list_dead_letters",
    "list_streams",
    "list_syncs",
    "managed_table_apply",
    "migrate",
    "migrate_sync",
    "nack",
    "records_page",
    "replay_dead_letters",
    "reveal_secret",
    "rewind",
    "update_consumer",
    "update_sync",
    "write",
]
