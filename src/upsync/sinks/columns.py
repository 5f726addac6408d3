"""Target columns as introspected, and the one contract for the values every driver writes.

Pure: nothing here does I/O. A route's columns are resolved against the table's real columns
(:data:`INTROSPECT`) and each column's extractor is wrapped by :func:`adapt`:

* a JSON column (``json``/``jsonb``) gets JSON text (orjson); a value orjson cannot encode is a
  :class:`~upsync.errors.MappingError`;
* a non-JSON column refuses a JSON object (and a non-array column a JSON array) with a
  ``MappingError``, since no driver could send it;
* everything else goes as it is, and Postgres parses it by the column's type.

A value Postgres can never store (a NUL character in text, a ``\\u0000`` escape in ``jsonb``)
is not looked for on the hot path: when Postgres (or the driver) refuses a single row,
:func:`diagnose` names it as a ``MappingError``, the same whatever the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import orjson

from upsync.errors import MappingError
from upsync.records import Record
from upsync.sinks.routes import Column, parse_path

__all__ = [
    "INTROSPECT",
    "TEXT_TYPES",
    "ColumnInfo",
    "TableInfo",
    "adapt",
    "diagnose",
    "table_info",
    "text_row",
]

TEXT_TYPES = frozenset({"text", "character varying", "character", "name", "citext"})
_OBJECT_SOURCES = frozenset({"data", "sync.metadata"})

#: A table's columns, in table order: ``%s`` is the quoted, possibly qualified table name.
INTROSPECT = (
    "SELECT a.attname, format_type(a.atttypid, NULL), t.typname IN ('json', 'jsonb'), "
    "t.typcategory = 'A' "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)


@dataclass(frozen=True)
class ColumnInfo:
    """A target column as introspected: name, type without modifiers, JSON/array flags."""

    name: str
    type: str
    is_json: bool
    is_array: bool


@dataclass(frozen=True)
class TableInfo:
    """A target table's columns, in table order."""

    columns: dict[str, ColumnInfo]

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def types(self, columns: Sequence[Column]) -> dict[str, str]:
        """Type names of ``columns``, by column name."""
        return {c.name: self.columns[c.name].type for c in columns}


def table_info(rows: Sequence[Sequence[Any]]) -> TableInfo:
    """The :class:`TableInfo` from the rows of :data:`INTROSPECT`."""
    return TableInfo({r[0]: ColumnInfo(r[0], r[1], bool(r[2]), bool(r[3])) for r in rows})


def adapt(column: Column, info: ColumnInfo) -> Column:
    """The column with its extractor wrapped to the value contract (see the module doc)."""
    extract = _extractor(column, scalar=not (info.is_json or info.is_array), json=info.is_json)
    if info.is_json:
        name = column.name

        def to_json(record: Record) -> Any:
            value = extract(record)
            if value is None:
                return None
            try:
                return orjson.dumps(value).decode()
            except TypeError as e:
                raise MappingError(f"cannot encode as JSON: {e}", column=name) from None

        return Column(column.name, column.source, to_json)
    if extract is column.extract:
        return column  # a record attribute: its type is known and fits a scalar column
    return Column(column.name, column.source, extract)


def _refusal(value: Any, name: str) -> MappingError:
    kind = "object" if isinstance(value, dict) else "array"
    return MappingError(f"value is a JSON {kind}, but column {name!r} is not JSON", column=name)


def _extractor(column: Column, *, scalar: bool, json: bool) -> Callable[[Record], Any]:
    """The column's extractor, checked for a non-JSON column; for a ``data`` path, a fast one.

    A path gives the same result as :mod:`upsync.sinks.routes`' path getter (a missing key or
    index, or a step into something that is not an object (name) or an array (index), gives
    ``None``) at a third of the cost.
    """
    source = column.source
    name = column.name
    is_path = isinstance(source, str) and source[:5] in ("data.", "data[")
    if isinstance(source, str) and source not in _OBJECT_SOURCES and not is_path:
        return column.extract  # a scalar record attribute
    if not isinstance(source, str) or source in _OBJECT_SOURCES:
        extract = column.extract
        if json:
            return extract

        def call(record: Record) -> Any:
            value = extract(record)
            if isinstance(value, dict) or (scalar and isinstance(value, list)):
                raise _refusal(value, name)
            return value

        return call
    steps = parse_path(source[4:], source)

    def get(record: Record) -> Any:
        value: Any = record.data
        try:
            for step in steps:
                if step.__class__ is int and not isinstance(value, list):
                    return None
                value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
        if not json and (isinstance(value, dict) or (scalar and isinstance(value, list))):
            raise _refusal(value, name)
        return value

    return get


def diagnose(row: Sequence[Any], columns: Sequence[Column], info: TableInfo) -> MappingError | None:
    """Why Postgres can never store this row, if it is a value no driver can send; else None."""
    for column, value in zip(columns, row, strict=True):
        if _has_nul(value):
            return MappingError(
                "text contains a NUL (0x00) character, which Postgres cannot store",
                column=column.name,
            )
        if (
            info.columns[column.name].type == "jsonb"
            and isinstance(value, str)
            and "\\u0000" in value
            and _has_nul(orjson.loads(value))
        ):
            return MappingError(
                "JSON contains a \\u0000 character, which Postgres jsonb cannot store",
                column=column.name,
            )
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def text_row(row: Sequence[Any]) -> tuple[str | None, ...]:
    """The row in Postgres' text format, as ``COPY`` sends it: one string (or NULL) per value.

    Every driver then binds the same text, and Postgres parses it by the column's type, so a
    value it refuses is refused with the same error whatever the driver.
    """
    return tuple([_text(v) for v in row])


def _text(value: Any) -> str | None:
    if value is None or value.__class__ is str:
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list | tuple):
        return "{" + ",".join(_element(v) for v in value) + "}"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    return str(value)


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list | tuple):
        return _text(value) or "{}"
    text = _text(value) or ""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
