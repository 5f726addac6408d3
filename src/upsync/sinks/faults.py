"""The one shape drivers report database errors in to the apply steps.

Whether an error is the row's fault (isolate the row) or not (raise) is decided by
:func:`upsync.pgerrors.is_row_fault`, the project's one SQLSTATE table.
"""

from __future__ import annotations

from upsync.pgerrors import is_row_fault

__all__ = ["DbFailure", "is_row_fault"]


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
