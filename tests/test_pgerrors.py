"""Every Postgres error psycopg knows has a place in :mod:`upsync.pgerrors`."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pytest
from psycopg_pool import PoolTimeout

from upsync.pgerrors import (
    SQLSTATE_CLASSES,
    SQLSTATE_CODES,
    classify,
    classify_sqlstate,
    is_row_fault,
    is_transient,
)


def _psycopg_error_classes() -> list[type[psycopg.Error]]:
    found = []
    for name in dir(psycopg.errors):
        value = getattr(psycopg.errors, name)
        if isinstance(value, type) and issubclass(value, psycopg.Error):
            found.append(value)
    return found


def test_every_sqlstate_class_psycopg_knows_is_placed() -> None:
    codes = {str(c.sqlstate) for c in _psycopg_error_classes() if getattr(c, "sqlstate", None)}
    assert len(codes) > 200  # the walk found psycopg's table, not an empty module
    unplaced = sorted({code[:2] for code in codes if code[:2] not in SQLSTATE_CLASSES})
    assert unplaced == [], f"SQLSTATE classes without a fault in upsync.pgerrors: {unplaced}"


def test_every_listed_code_is_a_real_one_that_differs_from_its_class() -> None:
    known = {c.sqlstate for c in _psycopg_error_classes() if getattr(c, "sqlstate", None)}
    for code, fault in SQLSTATE_CODES.items():
        assert code in known, code
        assert SQLSTATE_CLASSES[code[:2]] != fault, f"{code} repeats its class"


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (psycopg.errors.AdminShutdown, "transient"),  # 57P01
        (psycopg.errors.CrashShutdown, "transient"),  # 57P02
        (psycopg.errors.CannotConnectNow, "transient"),  # 57P03
        (psycopg.errors.SerializationFailure, "transient"),  # 40001
        (psycopg.errors.DeadlockDetected, "transient"),  # 40P01
        (psycopg.errors.LockNotAvailable, "transient"),  # 55P03
        (psycopg.errors.TooManyConnections, "transient"),  # 53300
        (psycopg.errors.ConnectionFailure, "transient"),  # 08006
        (psycopg.errors.QueryCanceled, "transient"),  # 57014, statement_timeout
        (psycopg.errors.IdleInTransactionSessionTimeout, "transient"),
        (psycopg.errors.UniqueViolation, "row_fault"),  # 23505
        (psycopg.errors.NotNullViolation, "row_fault"),
        (psycopg.errors.InvalidTextRepresentation, "row_fault"),  # 22P02
        (psycopg.errors.NumericValueOutOfRange, "row_fault"),
        (psycopg.errors.DatatypeMismatch, "row_fault"),  # 42804
        (psycopg.errors.ProgramLimitExceeded, "row_fault"),  # 54000
        (psycopg.errors.UndefinedTable, "terminal"),  # 42P01
        (psycopg.errors.InsufficientPrivilege, "terminal"),
        (psycopg.errors.SyntaxError, "terminal"),
        (psycopg.errors.InvalidPassword, "terminal"),
        (psycopg.errors.DatabaseDropped, "terminal"),  # 57P04
        (psycopg.errors.DataCorrupted, "terminal"),
        (psycopg.errors.RaiseException, "terminal"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else v,
)
def test_errors_by_class(error: type[psycopg.Error], fault: str) -> None:
    assert classify_sqlstate(str(error.sqlstate)) == fault
    assert classify(error("boom")) == fault


def test_client_side_errors_without_a_sqlstate() -> None:
    assert classify(psycopg.OperationalError("connection is closed")) == "transient"
    assert is_transient(PoolTimeout("couldn't get a connection after 30.00 sec"))
    assert classify(psycopg.DataError("NUL (0x00) in text")) == "row_fault"
    assert classify(psycopg.ProgrammingError("cannot adapt type")) == "terminal"
    assert classify(psycopg.InterfaceError("misuse")) == "terminal"


def test_non_postgres_errors_are_terminal_here() -> None:
    assert classify(KeyError("x")) == "terminal"
    assert classify(TypeError("programming error")) == "terminal"
    assert not is_transient(RuntimeError())


def test_unknown_sqlstates_fall_back_on_their_class_then_terminal() -> None:
    assert classify_sqlstate("08ZZZ") == "transient"
    assert classify_sqlstate("ZZ000") == "terminal"
    assert is_row_fault("23ZZZ") and not is_row_fault(None) and not is_row_fault("42P01")
