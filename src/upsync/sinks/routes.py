"""Routes: which table a collection lands in, and where each column's value comes from.

Pure data and pure functions; nothing here talks to a database. A column's *source* is one of:

* a record attribute: ``"id"``, ``"upstream_id"``, ``"collection_id"``, ``"provider"``,
  ``"stream_id"``, ``"updated_idx"``, ``"deleted"``, ``"inserted_at"``,
  ``"upstream_created_at"``, ``"upstream_updated_at"``, ``"data"`` (the whole object);
* the sync: ``"sync.id"``, ``"sync.external_id"``, ``"sync.metadata"``;
* a path into ``data``: ``"data.customer"``, ``"data.items.data[0].price.id"`` (a missing key or
  index gives ``None``, so optional Stripe fields need no special casing);
* any callable ``(Record) -> value``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

from upsync.errors import ConfigurationError
from upsync.names import check_identifier
from upsync.records import Record

__all__ = [
    "STANDARD_COLUMNS",
    "Column",
    "Route",
    "Source",
    "check_identifier",
    "compile_source",
    "parse_path",
]

Source = str | Callable[[Record], Any]
"""Where a column's value comes from: a source string (see the module doc) or a callable."""

Extractor = Callable[[Record], Any]

_ATTRIBUTES = frozenset(
    {
        "id",
        "upstream_id",
        "collection_id",
        "provider",
        "stream_id",
        "updated_idx",
        "deleted",
        "inserted_at",
        "upstream_created_at",
        "upstream_updated_at",
        "data",
    }
)
_SYNC = {"sync.id": "id", "sync.external_id": "external_id", "sync.metadata": "metadata"}
_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")

#: The columns of Sequin's upsert guide, by column name → source. A route maps whichever of
#: these its table has (``standard="auto"``), unless told otherwise.
STANDARD_COLUMNS: Mapping[str, str] = {
    "id": "id",
    "upstream_id": "upstream_id",
    "deleted": "deleted",
    "updated_idx": "updated_idx",
    "sync_id": "sync.id",
    "sync_external_id": "sync.external_id",
    "sync_metadata": "sync.metadata",
    "upstream_created_at": "upstream_created_at",
    "upstream_updated_at": "upstream_updated_at",
    "collection_id": "collection_id",
    "provider": "provider",
    "inserted_at": "inserted_at",
    "data": "data",
}


def compile_source(source: Source) -> Extractor:
    """Turn a column source into a function ``(Record) -> value``; bad specs raise early."""
    if callable(source):
        return source
    if not isinstance(source, str) or not source:
        raise ConfigurationError(f"a column source must be a string or a callable, got {source!r}")
    if source in _ATTRIBUTES:
        return attrgetter(source)
    if source in _SYNC:
        return attrgetter(f"sync.{_SYNC[source]}")
    if source.startswith(("data.", "data[")):
        return _path_getter(source, parse_path(source[4:], source))
    raise ConfigurationError(
        f"unknown column source {source!r}: use a record attribute "
        f"({', '.join(sorted(_ATTRIBUTES))}), sync.id / sync.external_id / sync.metadata, "
        f"a path like 'data.items.data[0].price.id', or a callable"
    )


def parse_path(path: str, spec: str) -> tuple[str | int, ...]:
    """The steps of a data path (``path`` without its ``data`` prefix; ``spec`` for errors)."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None or m.end() == pos:
            raise ConfigurationError(f"cannot parse data path {spec!r} at {path[pos:]!r}")
        steps.append(m[1] if m[1] is not None else int(m[2]))
        pos = m.end()
    if not steps:
        raise ConfigurationError(f"empty data path in {spec!r}")
    return tuple(steps)


def _path_getter(spec: str, steps: tuple[str | int, ...]) -> Extractor:
    def get(record: Record) -> Any:
        value: Any = record.data
        for step in steps:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    return None
            elif not isinstance(value, Mapping):
                return None
            value = value[step] if isinstance(step, int) else value.get(step)
        return value

    get.__qualname__ = f"path({spec})"
    return get


@dataclass(frozen=True, slots=True)
class Column:
    """One target column and the compiled function that computes its value from a record."""

    name: str
    source: Source
    extract: Extractor = field(compare=False, repr=False)

    @classmethod
    def of(cls, name: str, source: Source) -> Column:
        """Build a column, validating the source now rather than at the first record."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a column name must be a non-empty string, got {name!r}")
        return cls(name=name, source=source, extract=compile_source(source))


@dataclass(frozen=True)
class Route:
    """Where records of one collection go.

    ``columns`` maps extra target columns to their sources. ``standard`` adds the standard
    columns (:data:`STANDARD_COLUMNS`): ``"auto"`` maps every one the table has (looked up once),
    a sequence names them, ``()`` maps none. The key column (``id`` by default) and the version
    column (``updated_idx``) must end up mapped; they drive the guarded upsert.
    ``deleted_column`` receives the tombstone flag for soft deletes (``None`` if the table has
    no such column; then deletions need ``hard_delete`` on the sink).
    """

    collection_id: str
    table: str
    schema: str | None = None
    columns: Mapping[str, Source] = field(default_factory=dict)
    standard: Literal["auto"] | Sequence[str] = "auto"
    key_column: str = "id"
    version_column: str = "updated_idx"
    deleted_column: str | None = "deleted"

    def __post_init__(self) -> None:
        if not self.collection_id or ":" not in self.collection_id:
            raise ConfigurationError(
                f"route collection_id must be 'provider:name', got {self.collection_id!r}"
            )
        if not self.table:
            raise ConfigurationError(f"route for {self.collection_id!r} has no table")
        for kind, name in (
            ("table", self.table),
            ("schema", self.schema),
            *(("column", c) for c in self.columns),
        ):
            if name is not None:
                check_identifier(name, f"route for {self.collection_id!r}: {kind}")
        if self.standard != "auto":
            unknown = [c for c in self.standard if c not in STANDARD_COLUMNS]
            if unknown:
                raise ConfigurationError(
                    f"route for {self.collection_id!r}: {unknown} are not standard columns "
                    f"({', '.join(STANDARD_COLUMNS)})"
                )
        for name, source in self.columns.items():
            Column.of(name, source)  # validates eagerly: a typo fails at startup

    @property
    def qualified_name(self) -> tuple[str, ...]:
        """``(schema, table)`` or ``(table,)``: the parts for ``psycopg.sql.Identifier``."""
        return (self.schema, self.table) if self.schema else (self.table,)

    def resolve(self, table_columns: Sequence[str] | None) -> tuple[Column, ...]:
        """The route's columns, with standard ones resolved against the table's column names.

        ``table_columns`` is the table's actual column list; it is required when
        ``standard="auto"`` and is used to check that every mapped column exists.
        """
        if self.standard == "auto":
            if table_columns is None:
                raise ConfigurationError(
                    f"route for {self.collection_id!r}: standard='auto' needs the table columns"
                )
            standard = [c for c in STANDARD_COLUMNS if c in table_columns]
        else:
            standard = list(self.standard)
        merged: dict[str, Source] = {c: STANDARD_COLUMNS[c] for c in standard}
        merged.update(self.columns)
        for required in (self.key_column, self.version_column):
            if required not in merged:
                raise ConfigurationError(
                    f"route for {self.collection_id!r} does not map column {required!r}, "
                    f"which the guarded upsert needs"
                )
        if table_columns is not None:
            missing = [c for c in merged if c not in table_columns]
            if missing:
                raise ConfigurationError(
                    f"table {'.'.join(self.qualified_name)} has no column(s) {missing} "
                    f"mapped by the route for {self.collection_id!r}"
                )
        return tuple(Column.of(name, source) for name, source in merged.items())
