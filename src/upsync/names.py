"""Names that become SQL identifiers: the few rules quoting alone cannot enforce."""

from __future__ import annotations

from upsync.errors import ConfigurationError

__all__ = ["check_identifier"]


def check_identifier(name: str, what: str) -> str:
    """Return ``name`` if Postgres will store it as given; else raise :class:`ConfigurationError`.

    Postgres cuts a name at NUL and truncates it at 63 bytes, so a table or schema would
    silently get another name; and a driver executing a statement with parameters reads ``%`` as
    a placeholder even inside a quoted name. Quoting (``psycopg.sql.Identifier``) handles
    everything else — quotes, ``;``, unicode.
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{what}: expected a non-empty name, got {name!r}")
    if "\x00" in name:
        raise ConfigurationError(f"{what} {name!r} contains a NUL character")
    if "%" in name:
        raise ConfigurationError(f"{what} {name!r} contains '%', which upsync does not support")
    if len(name.encode()) > 63:
        raise ConfigurationError(
            f"{what} {name[:20]!r}… is {len(name.encode())} bytes; Postgres names hold at most 63"
        )
    return name
