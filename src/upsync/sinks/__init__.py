"""Sinks: where consumed records land. ``TableSink`` upserts them into the user's tables."""

from upsync.sinks.ddl import (
    create_table_sql,
    create_table_text,
    ensure_table,
    ensure_table_async,
    supports_lz4,
    supports_lz4_async,
)
from upsync.sinks.plan import BatchPlan, TableBatch, plan_batch
from upsync.sinks.routes import STANDARD_COLUMNS, Column, Route, Source, compile_source
from upsync.sinks.table import ApplyResult, TableSink

__all__ = [
    "STANDARD_COLUMNS",
    "ApplyResult",
    "BatchPlan",
    "Column",
    "Route",
    "Source",
    "TableBatch",
    "TableSink",
    "compile_source",
    "create_table_sql",
    "create_table_text",
    "ensure_table",
    "ensure_table_async",
    "plan_batch",
    "supports_lz4",
    "supports_lz4_async",
]
