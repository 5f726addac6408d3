"""upsync's own schema, as numbered migrations applied once each.

:func:`migrate` is safe to call from many processes at once: it takes a transaction-scoped
advisory lock keyed by the schema name, so exactly one caller applies the missing steps and the
others wait, then find nothing left to do. Each step runs in that same transaction, so a failed
step leaves no trace and no ``schema_migrations`` row.

Hot tables (``records``, ``events``, ``consumer_messages``) carry no foreign keys on purpose:
per-row RI checks would double the cost of bulk writes. Their integrity comes from the write
path (one statement per batch) and from the stream-row lock that consumer creation, rewind and
deletion take (see :mod:`upsync.stream.consumers`).
"""

from __future__ import annotations

from dataclasses import dataclass

from upsync.stream.tables import DEFAULT_SCHEMA, AConn, Conn, q


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step: its SQL runs once per schema, in the migrating transaction."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "catalog: streams, credentials, syncs",
        """
        CREATE TABLE {streams} (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL UNIQUE,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {credentials} (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            provider text NOT NULL,
            kind text NOT NULL,
            name text,
            secret text NOT NULL,
            test boolean NOT NULL DEFAULT false,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {syncs} (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            stream_id uuid NOT NULL REFERENCES {streams} (id),
            provider text NOT NULL,
            name text NOT NULL,
            collection_ids text[] NOT NULL DEFAULT '{{}}',
            external_id text,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
            cursors jsonb NOT NULL DEFAULT '{{}}',
            initial_backfill_completed_at timestamptz,
            rate_limit jsonb,
            credential_id uuid REFERENCES {credentials} (id),
            max_age_days integer,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX ON {syncs} (stream_id);
        """,
    ),
    Migration(
        2,
        "stream: records (compacted), events, updated_idx sequence",
        """
        -- one sequence for the whole schema, one value per written batch: a batch's versions are
        -- (value << 20) + 1, + 2, ... (see upsync.stream.write). CACHE 1 keeps it strictly
        -- increasing across sessions.
        CREATE SEQUENCE {updated_idx_seq} AS bigint CACHE 1;
        CREATE TABLE {records} (
            id uuid PRIMARY KEY,
            stream_id uuid NOT NULL,
            sync_id uuid NOT NULL,
            provider text NOT NULL,
            collection_id text NOT NULL,
            upstream_id text NOT NULL,
            data jsonb NOT NULL,
            deleted boolean NOT NULL DEFAULT false,
            updated_idx bigint NOT NULL,
            source_version bigint NOT NULL,
            upstream_created_at timestamptz,
            upstream_updated_at timestamptz,
            inserted_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            -- the transaction that wrote this version (an xid8 as bigint): lets the paged Stream
            -- API return rows that committed after a page was read with a lower updated_idx
            -- (upsync.stream.pages)
            xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint
        );
        CREATE INDEX ON {records} (updated_idx);
        CREATE INDEX ON {records} (xid);
        CREATE TABLE {events} (
            seq bigint PRIMARY KEY,
            event_id uuid NOT NULL DEFAULT gen_random_uuid(),
            stream_id uuid NOT NULL,
            sync_id uuid NOT NULL,
            record_id uuid NOT NULL,
            provider text NOT NULL,
            collection_id text NOT NULL,
            upstream_id text NOT NULL,
            event text NOT NULL CHECK (event IN ('created', 'updated', 'deleted')),
            data jsonb NOT NULL,
            changes jsonb,
            upstream_updated_at timestamptz,
            inserted_at timestamptz NOT NULL,
            xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint
        );
        -- append-only, so xid follows the heap order: BRIN is enough and cheap to maintain
        CREATE INDEX ON {events} USING brin (xid);
        """,
    ),
    Migration(
        3,
        "consumers and per-consumer message state",
        """
        CREATE SEQUENCE {delivery_seq} AS bigint;
        CREATE TABLE {consumers} (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            stream_id uuid NOT NULL REFERENCES {streams} (id),
            name text NOT NULL,
            kind text NOT NULL DEFAULT 'http',
            filter_provider text NOT NULL DEFAULT '*',
            filter_sync_id text NOT NULL DEFAULT '*',
            filter_collection_id text NOT NULL DEFAULT '*',
            deliver_policy text NOT NULL DEFAULT 'all',
            ack_wait_ms integer NOT NULL DEFAULT 30000 CHECK (ack_wait_ms > 0),
            max_deliver integer NOT NULL DEFAULT -1 CHECK (max_deliver = -1 OR max_deliver > 0),
            max_ack_pending integer NOT NULL DEFAULT 1000 CHECK (max_ack_pending > 0),
            metadata jsonb NOT NULL DEFAULT '{{}}',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (stream_id, name)
        );
        -- one row per (consumer, record): what the consumer still owes for that record.
        -- pending: deliverable now; delivered: held by a worker until ack_deadline;
        -- dead: gave up after max_deliver attempts (listed, replayable). Acked rows are deleted.
        CREATE TABLE {consumer_messages} (
            consumer_id uuid NOT NULL,
            record_id uuid NOT NULL,
            updated_idx bigint NOT NULL,
            state text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'delivered', 'dead')),
            deliver_count integer NOT NULL DEFAULT 0,
            delivery_id bigint,
            delivered_idx bigint,
            ack_deadline timestamptz,
            dead_at timestamptz,
            PRIMARY KEY (consumer_id, record_id)
        );
        CREATE INDEX ON {consumer_messages} (consumer_id, updated_idx)
            WHERE state <> 'dead';
        CREATE INDEX ON {consumer_messages} (consumer_id, ack_deadline)
            WHERE state = 'delivered';
        CREATE INDEX ON {consumer_messages} (consumer_id, dead_at)
            WHERE state = 'dead';
        """,
    ),
    Migration(
        4,
        "api tokens",
        # bearer tokens of the HTTP API, stored as sha256 hashes (see upsync.ops.tokens)
        """
        CREATE TABLE IF NOT EXISTS {schema}.api_tokens (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL,
            token_hash bytea NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        );
        CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_active_name
            ON {schema}.api_tokens (name) WHERE revoked_at IS NULL;
        """,
    ),
    Migration(
        5,
        "dead letters keep the reason of their last failed attempt",
        """
        ALTER TABLE {consumer_messages} ADD COLUMN IF NOT EXISTS last_error text;
        """,
    ),
    Migration(
        6,
        "consumers read the stream through a cursor; writers no longer fan out messages",
        # each consumer now pulls records into consumer_messages when it claims (see
        # upsync.stream.cursor), so a write costs the same whatever the number of consumers.
        # Consumers that exist already were fanned out to up to now: they start at the end.
        """
        ALTER TABLE {consumers}
            ADD COLUMN IF NOT EXISTS after_idx bigint NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS late_after bigint NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS cursor_snapshot text;
        -- a cursor reads one stream in updated_idx order: this index serves it whatever the
        -- planner's statistics say (right after a large first write they are missing)
        CREATE INDEX IF NOT EXISTS records_stream_position
            ON {records} (stream_id, updated_idx);
        UPDATE {consumers} k SET after_idx = coalesce(
            (SELECT max(r.updated_idx) FROM {records} r WHERE r.stream_id = k.stream_id), 0),
            cursor_snapshot = pg_current_snapshot()::text;
        """,
    ),
    Migration(
        7,
        "syncs keep the engine's view of their health, for processes that do not run them",
        # written by the replica that runs the sync when its state changes (started, failing,
        # backfill done…), so `upsync status` and the API in another process show it too
        """
        ALTER TABLE {syncs} ADD COLUMN IF NOT EXISTS health jsonb;
        """,
    ),
    Migration(
        8,
        "webhook consumers' delivery status and per-message failures",
        # created on demand by upsync.engine.webhooks before this migration: IF NOT EXISTS
        """
        CREATE TABLE IF NOT EXISTS {schema}.webhook_status (
            consumer_id uuid PRIMARY KEY,
            failing_since timestamptz,          -- first failure since the last success
            attempts integer NOT NULL DEFAULT 0, -- failed attempts since the last success
            last_error text,
            last_error_at timestamptz,
            last_attempt_at timestamptz,
            last_success_at timestamptz,
            delivered bigint NOT NULL DEFAULT 0,
            dead_lettered bigint NOT NULL DEFAULT 0,
            last_dead_lettered_at timestamptz
        );
        -- one row per message that failed and was not delivered since: when it first failed
        -- (the retry horizon counts from there) and why it failed last (the dead letter's reason)
        CREATE TABLE IF NOT EXISTS {schema}.webhook_failures (
            consumer_id uuid NOT NULL,
            record_id uuid NOT NULL,
            first_failed_at timestamptz NOT NULL,
            last_failed_at timestamptz NOT NULL,
            attempts integer NOT NULL,
            last_error text NOT NULL,
            dead boolean NOT NULL DEFAULT false,
            PRIMARY KEY (consumer_id, record_id)
        );
        """,
    ),
)

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema_migrations} (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: AConn, *, schema: str = DEFAULT_SCHEMA) -> int:
    """Bring ``schema`` up to the latest migration; returns how many steps this call applied.

    Commits its own transaction: call it on a connection with no transaction in progress.
    """
    async with conn.transaction():
        await conn.execute(
            q(schema, "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"),
            [f"upsync.migrate:{schema}"],
        )
        await conn.execute(q(schema, _BOOTSTRAP))
        cur = await conn.execute(q(schema, "SELECT version FROM {schema_migrations}"))
        done = {row[0] for row in await cur.fetchall()}
        todo = [m for m in MIGRATIONS if m.version not in done]
        for step in todo:
            await conn.execute(q(schema, step.sql))
            await conn.execute(
                q(schema, "INSERT INTO {schema_migrations} (version, name) VALUES (%s, %s)"),
                [step.version, step.name],
            )
    return len(todo)


def migrate_sync(conn: Conn, *, schema: str = DEFAULT_SCHEMA) -> int:
    """:func:`migrate` for a synchronous connection (CLI, tests, scripts)."""
    with conn.transaction():
        conn.execute(
            q(schema, "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"),
            [f"upsync.migrate:{schema}"],
        )
        conn.execute(q(schema, _BOOTSTRAP))
        cur = conn.execute(q(schema, "SELECT version FROM {schema_migrations}"))
        done = {row[0] for row in cur.fetchall()}
        todo = [m for m in MIGRATIONS if m.version not in done]
        for step in todo:
            conn.execute(q(schema, step.sql))
            conn.execute(
                q(schema, "INSERT INTO {schema_migrations} (version, name) VALUES (%s, %s)"),
                [step.version, step.name],
            )
    return len(todo)
