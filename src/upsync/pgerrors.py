"""Postgres errors, classified once: is it worth retrying, is it the row's fault, or neither?

Every place where a Postgres error enters upsync's control (an engine loop, a sink isolating
bad rows, the API mapping a failure to a status) asks :func:`classify` rather than keeping its
own list. The answer is one of three :data:`Fault` values:

- ``"transient"``: the database, not the request, is in the way — the connection was lost, the
  server is shutting down or out of connections, a serialization failure or deadlock rolled
  the transaction back, a lock or statement timed out. Retry the same work later.
- ``"row_fault"``: Postgres refused the data itself (a data exception, an integrity violation,
  a value of the wrong type, a row too large). Retrying cannot help; a sink isolates the row.
- ``"terminal"``: anything else — a missing table or column, a permission, a syntax error,
  a corrupted index. Retrying the same thing gives the same answer: stop, report it, wait for
  a person.

The table maps each SQLSTATE *class* (its first two characters) to a fault and lists the
codes that differ from their class; ``tests/test_pgerrors.py`` walks every error class psycopg
knows and fails on a SQLSTATE class this table does not place. Errors psycopg raises without
a SQLSTATE are classified by their DB-API class (see :func:`classify`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import psycopg

__all__ = [
    "ROW_FAULT",
    "SQLSTATE_CLASSES",
    "SQLSTATE_CODES",
    "TERMINAL",
    "TRANSIENT",
    "Fault",
    "classify",
    "classify_sqlstate",
    "is_row_fault",
    "is_transient",
]

Fault = Literal["transient", "row_fault", "terminal"]
"""What a caller should do about a Postgres error (see the module doc)."""

TRANSIENT: Final = "transient"
ROW_FAULT: Final = "row_fault"
TERMINAL: Final = "terminal"

#: SQLSTATE class → fault. Every class Postgres defines is here (PostgreSQL manual, appendix A).
SQLSTATE_CLASSES: Mapping[str, Fault] = {
    "00": TERMINAL,  # successful completion (never raised)
    "01": TERMINAL,  # warning (never raised)
    "02": TERMINAL,  # no data
    "03": TERMINAL,  # SQL statement not yet complete
    "08": TRANSIENT,  # connection exception: the connection is gone; a new one may work
    "09": TERMINAL,  # triggered action exception
    "0A": TERMINAL,  # feature not supported
    "0B": TERMINAL,  # invalid transaction initiation
    "0F": TERMINAL,  # locator exception
    "0L": TERMINAL,  # invalid grantor
    "0P": TERMINAL,  # invalid role specification
    "0Z": TERMINAL,  # diagnostics exception
    "10": TERMINAL,  # XQuery error
    "20": TERMINAL,  # case not found
    "21": ROW_FAULT,  # cardinality violation (e.g. one row proposed twice to ON CONFLICT)
    "22": ROW_FAULT,  # data exception: the value itself is refused
    "23": ROW_FAULT,  # integrity constraint violation
    "24": TERMINAL,  # invalid cursor state
    "25": TERMINAL,  # invalid transaction state (timeouts are listed below)
    "26": TERMINAL,  # invalid SQL statement name
    "27": TERMINAL,  # triggered data change violation
    "28": TERMINAL,  # invalid authorization specification: a bad password stays bad
    "2B": TERMINAL,  # dependent privilege descriptors still exist
    "2D": TERMINAL,  # invalid transaction termination
    "2F": TERMINAL,  # SQL routine exception
    "34": TERMINAL,  # invalid cursor name
    "38": TERMINAL,  # external routine exception
    "39": TERMINAL,  # external routine invocation exception
    "3B": TERMINAL,  # savepoint exception
    "3D": TERMINAL,  # invalid catalog name (no such database)
    "3F": TERMINAL,  # invalid schema name
    "40": TRANSIENT,  # transaction rollback: serialization failure, deadlock — run it again
    "42": TERMINAL,  # syntax error or access rule violation (missing table, permission …)
    "44": ROW_FAULT,  # WITH CHECK OPTION violation: the row does not fit the view
    "53": TRANSIENT,  # insufficient resources: disk full, out of memory, too many connections
    "54": TERMINAL,  # program limit exceeded (a row too big is listed below)
    "55": TERMINAL,  # object not in prerequisite state (lock timeouts are listed below)
    "57": TRANSIENT,  # operator intervention: shutdown, restart, statement cancelled
    "58": TERMINAL,  # system error: missing or duplicate files (I/O errors are listed below)
    "72": TRANSIENT,  # snapshot too old
    "F0": TERMINAL,  # configuration file error
    "HV": TERMINAL,  # foreign data wrapper error
    "P0": TERMINAL,  # PL/pgSQL error (RAISE EXCEPTION, assert failure)
    "XX": TERMINAL,  # internal error, data or index corrupted
}

#: Codes whose fault differs from their class's.
SQLSTATE_CODES: Mapping[str, Fault] = {
    "25P03": TRANSIENT,  # idle_in_transaction_session_timeout: the server closed the session
    "25P04": TRANSIENT,  # transaction_timeout
    "42804": ROW_FAULT,  # datatype_mismatch: a value of the wrong type for its column
    "54000": ROW_FAULT,  # program_limit_exceeded: e.g. index row size exceeds the maximum
    "55006": TRANSIENT,  # object_in_use
    "55P03": TRANSIENT,  # lock_not_available (lock_timeout, NOWAIT)
    "57P04": TERMINAL,  # database_dropped: no retry brings it back
    "58030": TRANSIENT,  # io_error
}


def classify_sqlstate(sqlstate: str) -> Fault:
    """The fault of a SQLSTATE; an unknown class counts as terminal (never retried blindly)."""
    return SQLSTATE_CODES.get(sqlstate) or SQLSTATE_CLASSES.get(sqlstate[:2], TERMINAL)


def classify(error: BaseException) -> Fault:
    """The fault of any exception, as far as Postgres is concerned.

    A psycopg error with a SQLSTATE is classified by it. One without a SQLSTATE was raised by
    the client side: an ``OperationalError`` (this includes a pool timeout) means no usable
    connection — transient; a ``DataError`` means a value could not be sent (a NUL byte in
    text) — a row fault. Everything else, psycopg or not, is terminal here: whether another
    kind of error is worth retrying is its own type's business (``upsync.errors``).
    """
    if isinstance(error, psycopg.Error):
        if error.sqlstate:
            return classify_sqlstate(error.sqlstate)
        if isinstance(error, psycopg.OperationalError):
            return TRANSIENT
        if isinstance(error, psycopg.DataError):
            return ROW_FAULT
    return TERMINAL


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a Postgres error worth retrying (see :func:`classify`)."""
    return classify(error) == TRANSIENT


def is_row_fault(sqlstate: str | None) -> bool:
    """Whether a SQLSTATE means the row itself was refused (a sink isolates such rows)."""
    return sqlstate is not None and classify_sqlstate(sqlstate) == ROW_FAULT
