"""Schema-qualified SQL for upsync's own tables.

Every statement names its tables with ``{records}``-style placeholders; :func:`q` fills them with
``psycopg.sql.Identifier(schema, table)`` so the schema is a parameter everywhere and never
concatenated into SQL text.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any, TypeAlias

import psycopg
from psycopg import sql

from upsync.names import check_identifier

DEFAULT_SCHEMA = "upsync"

AConn: TypeAlias = psycopg.AsyncConnection[Any]
Conn: TypeAlias = psycopg.Connection[Any]

_NAMES = (
    "schema_migrations",
    "streams",
    "credentials",
    "syncs",
    "records",
    "events",
    "consumers",
    "consumer_messages",
    "updated_idx_seq",
    "delivery_seq",
)


# reusable fragments; they hold only bound-parameter placeholders, never values
_SNIPPETS: dict[str, sql.Composable] = {
    "now": sql.SQL("coalesce(%(now)s::timestamptz, now())"),
    # a batch statement sorts and hashes a few MB: keep that in memory until the transaction ends
    "roomy_work_mem": sql.SQL(
        "CASE WHEN pg_size_bytes(current_setting('work_mem')) < 64 * 1024 * 1024 "
        "THEN set_config('work_mem', '64MB', true) END"
    ),
    # a held message that used its max_deliver attempts (on the version it carried)
    "exhausted": sql.SQL(
        "(%(maxd)s > 0 AND m.deliver_count >= %(maxd)s AND m.updated_idx = m.delivered_idx)"
    ),
    "credential_cols": sql.SQL("id, provider, kind, name, test, metadata, created_at, updated_at"),
    "record_cols": sql.SQL(
        "r.id, r.upstream_id, r.collection_id, r.provider, r.stream_id, r.sync_id, r.data, "
        "r.deleted, r.updated_idx, r.inserted_at, r.upstream_created_at, r.upstream_updated_at, "
        "s.external_id AS sync_external_id, s.metadata AS sync_metadata"
    ),
}


@lru_cache(maxsize=512)
def q(schema: str, text: str) -> sql.Composed:
    """``text`` with ``{table}`` placeholders bound to ``schema``-qualified identifiers."""
    check_identifier(schema, "upsync schema")  # cached with the statement: checked once
    names: dict[str, sql.Composable] = {name: sql.Identifier(schema, name) for name in _NAMES}
    # nextval() takes a sequence by name: a literal of the quoted, schema-qualified name
    seq = sql.Identifier(schema, "updated_idx_seq").as_string(None)
    names["seq"] = sql.SQL("{}::regclass").format(sql.Literal(seq))
    dseq = sql.Identifier(schema, "delivery_seq").as_string(None)
    names["delivery_seq_reg"] = sql.SQL("{}::regclass").format(sql.Literal(dseq))
    names.update(_SNIPPETS)
    return sql.SQL(text).format(schema=sql.Identifier(schema), **names)


def channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of a schema: short and fixed-length (channels max 63 bytes)."""
    return "upsync_" + hashlib.sha1(schema.encode()).hexdigest()[:20]
