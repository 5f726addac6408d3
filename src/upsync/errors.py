"""upsync's one exception tree.

Every error upsync raises on purpose derives from :class:`UpsyncError`. Each one is also
classified by what a caller (a worker loop, a consumer, the engine) should do with it:

    UpsyncError
    ├── TransientError             retry later: the same input may succeed
    │   ├── DatabaseUnavailable    Postgres cannot be reached or went away mid-work
    │   ├── UpstreamUnavailable    the upstream API answered 429/5xx or did not answer
    │   └── ApiUnavailable         upsync's own API answered 429/5xx or could not be reached
    └── TerminalError              retrying the same input fails the same way: dead-letter it
        ├── ConfigurationError     a setting, route or mapping definition is wrong
        ├── RecordError            a record's wire JSON is malformed
        ├── MappingError           a record cannot become a row of its target table
        ├── RowRejected            Postgres refused a row (bad type, constraint violation)
        ├── NotFound               a named object (consumer, sync, stream …) does not exist
        ├── InvalidAckToken        an ack token is malformed, expired or belongs elsewhere
        ├── Unauthorized           a bearer token or API key was refused
        ├── WebhookSignatureError  a webhook failed verification; nothing was parsed
        └── UpstreamRejected       the API refused a request for good (400, 401, 404 …)

Errors carry the identifiers a person needs to find the culprit (record index and id, field,
column) as attributes, so logs and dead-letter rows can show them without parsing messages.
Messages never contain secrets: API keys and webhook secrets are redacted before they are
formatted (see :func:`upsync.redact.redact`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiUnavailable",
    "ConfigurationError",
    "DatabaseUnavailable",
    "InvalidAckToken",
    "MappingError",
    "NotFound",
    "RecordError",
    "RowRejected",
    "TerminalError",
    "TransientError",
    "Unauthorized",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "UpsyncError",
    "WebhookSignatureError",
]


class UpsyncError(Exception):
    """The root of every error upsync raises on purpose."""

    def attrs(self) -> dict[str, Any]:
        """The public attributes that locate the error (for logs and dead-letter rows)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class TransientError(UpsyncError):
    """The operation may succeed if retried later with the same input."""


class TerminalError(UpsyncError):
    """Retrying the same input will fail the same way; isolate or dead-letter it."""


class DatabaseUnavailable(TransientError):
    """Postgres could not be reached, or the connection broke mid-operation."""


class UpstreamUnavailable(TransientError):
    """The upstream API is rate limiting, failing (5xx) or unreachable."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ApiUnavailable(TransientError):
    """upsync's API answered 429/5xx or could not be reached; retrying later may succeed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConfigurationError(TerminalError):
    """A setting, a route or a column mapping is invalid."""


class Conflict(ConfigurationError):
    """What was asked for exists already with other settings (HTTP 409)."""


class RecordError(TerminalError, ValueError):
    """A record's wire JSON does not follow the record contract.

    ``index`` is the record's position in the decoded payload, ``record_id`` its ``id`` when it
    could be read, ``field`` the offending field (dotted for nested ones).
    """

    def __init__(
        self,
        reason: str,
        *,
        index: int | None = None,
        record_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.index = index
        self.record_id = record_id
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"record #{self.index}")
        if self.record_id is not None:
            where.append(f"id={self.record_id!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reason, self.attrs()))


class MappingError(TerminalError, ValueError):
    """A record could not be turned into a row: a path, callable or type did not fit."""

    def __init__(
        self,
        reason: str,
        *,
        record_id: str | None = None,
        collection_id: str | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = reason
        self.record_id = record_id
        self.collection_id = collection_id
        self.column = column
        where = [
            f"{label}={value!r}"
            for label, value in (
                ("record", record_id),
                ("collection", collection_id),
                ("column", column),
            )
            if value is not None
        ]
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reason, self.attrs()))


class RowRejected(TerminalError):
    """Postgres refused one record's row; the rest of its batch was applied without it."""

    def __init__(self, reason: str, *, record_id: str, table: str, sqlstate: str | None) -> None:
        self.reason = reason
        self.record_id = record_id
        self.table = table
        self.sqlstate = sqlstate
        super().__init__(f"record={record_id!r}, table={table}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.reason, self.attrs()))


class NotFound(TerminalError, LookupError):
    """A consumer, sync, stream or credential with that id or name does not exist."""


class InvalidAckToken(TerminalError):
    """An ack token is malformed, expired, already used, or belongs to another consumer."""


class Unauthorized(TerminalError):
    """A bearer token or an upstream API key was refused."""


class WebhookSignatureError(TerminalError):
    """A webhook's signature is missing, stale or wrong. Its body was not parsed."""


class UpstreamRejected(TerminalError):
    """The upstream API refused a request in a way retrying will not fix."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _rebuild(cls: type[UpsyncError], reason: str, attrs: dict[str, Any]) -> UpsyncError:
    """Recreate an error with keyword attributes, so errors survive pickling across processes."""
    kwargs = {k: v for k, v in attrs.items() if k != "reason"}
    return cls(reason, **kwargs)
