"""Sinks: where consumed records land. ``TableSink`` upserts them into the user's tables."""

from upsync.sinks.routes import STANDARD_COLUMNS, Column, Route, Source, compile_source

__all__ = ["STANDARD_COLUMNS", "Column", "Route", "Source", "compile_source"]
