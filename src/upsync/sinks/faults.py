"""Which database errors are a row's fault, and the one shape drivers report errors in.

The SQLSTATE table below is the sink's until ``upsync.pgerrors`` classifies Postgres errors for
the whole project; then :func:`is_row_fault` should defer to it.
"""

from __future__ import annotations

__all__ = ["DbFailure", "is_row_fault"]

# Postgres refuses the row itself: data exceptions, integrity violations, wrong type, a row too
# big for an index. Anything else (connection, deadlock, serialization, cancel, missing table)
# is not the row's fault and propagates.
_ROW_FAULT_CLASSES = frozenset({"22", "23"})
_ROW_FAULT_CODES = frozenset({"42804", "54000"})


def is_row_fault(sqlstate: str | None) -> bool:
    """Whether an error with this SQLSTATE is the row's fault (isolate it) or not (raise)."""
    return sqlstate is not None and (
        sqlstate[:2] in _ROW_FAULT_CLASSES or sqlstate in _ROW_FAULT_CODES
    )


class DbFailure(Exception):
    """A driver's error, as a driver throws it into the apply steps.

    ``error`` is the driver's own exception: when the steps do not handle a failure, the driver
    raises ``error`` itself, so callers see the exception their driver always raised.
    """

    def __init__(
        self,
        error: BaseException,
        *,
        sqlstate: str | None,
        message: str,
        detail: str | None = None,
        column: str | None = None,
        client_side: bool = False,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.sqlstate = sqlstate
        self.message = message
        self.detail = detail
        self.column = column
        self.client_side = client_side
        """The driver refused a value before sending it (no SQLSTATE): the row is at fault."""

    @property
    def row_fault(self) -> bool:
        """Whether the row is at fault (isolate it) rather than the database or the code."""
        return self.client_side or is_row_fault(self.sqlstate)

    @property
    def reason(self) -> str:
        """What a :class:`~upsync.errors.RowRejected` says: message, detail, column."""
        reason = self.message
        if self.detail:
            reason += f" ({self.detail})"
        if self.column:
            reason += f" [column {self.column}]"
        return reason
