"""Drivers: placeholders as each wants them, and the same outcome on every driver.

The tests after the first few run once per driver (:data:`tests.sinks._drivers.DRIVERS`).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.sinks._drivers import DRIVERS, Report, apply_once, report, session, wait_until
from upsync.errors import ConfigurationError, MappingError
from upsync.records import Record
from upsync.sinks import Route, TableSink
from upsync.sinks._drivers import render


def test_numeric_style_numbers_placeholders_outside_quotes_only() -> None:
    stmt = sql.SQL("INSERT INTO {} ({}) VALUES (%s, %s) RETURNING {}, '%s', 100 %% 7").format(
        sql.Identifier("s", "50%s off"), sql.Identifier('a"%s'), sql.Literal("it's %s")
    )
    assert render(stmt, "numeric") == (
        'INSERT INTO "s"."50%s off" ("a""%s") VALUES ($1, $2) RETURNING'
        " 'it''s %s', '%s', 100 % 7"
    )


def test_format_style_escapes_percent_inside_quotes_for_dbapi_drivers() -> None:
    stmt = sql.SQL("SELECT {}, %s, %% FROM {}").format(sql.Literal("5%"), sql.Identifier("t%s"))
    assert render(stmt, "format") == "SELECT '5%%', %s, %% FROM \"t%%s\""


def test_plain_strings_render_too() -> None:
    assert render("SELECT %s::text[], %s", "numeric") == "SELECT $1::text[], $2"


def test_an_unknown_placeholder_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="%d"):
        render("SELECT %d", "numeric")


# --- the same batch through every driver --------------------------------------------------

BAD_INPUTS_DDL = """
CREATE TABLE bad_inputs (
    id text PRIMARY KEY,
    updated_idx bigint NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    amount bigint,
    paid boolean,
    code varchar(8),
    label text NOT NULL,
    qty integer CHECK (qty >= 0),
    note json,
    payload jsonb
)
"""
THING = Route(
    "test:thing",
    "bad_inputs",
    columns={
        name: f"data.{name}"
        for name in ("amount", "paid", "code", "label", "qty", "note", "payload")
    },
    standard=("id", "updated_idx", "deleted"),
)
GOOD = {"amount": 1, "paid": True, "code": "ok", "label": "l", "qty": 1, "note": {"a": 1},
        "payload": {"a": [1, "x"]}}  # fmt: skip


def thing(name: str, version: int = 1, **data: Any) -> Record:
    return Record(f"th_{name}", f"th_{name}", "test:thing", version, {**GOOD, **data})


#: One record per way a value can be bad, each with the report every driver must give.
BAD: dict[str, tuple[Record, Report]] = {
    "lots": (
        thing("lots", amount="lots"),
        ("RowRejected", "th_lots", None, "22P02", 'invalid input syntax for type bigint: "lots"'),
    ),
    "decimal": (
        thing("decimal", amount="12.5"),
        ("RowRejected", "th_decimal", None, "22P02",
         'invalid input syntax for type bigint: "12.5"'),
    ),
    "huge": (
        thing("huge", amount=2**70),
        ("RowRejected", "th_huge", None, "22003",
         'value "1180591620717411303424" is out of range for type bigint'),
    ),
    "object": (
        thing("object", amount={"x": 1}),
        ("MappingError", "th_object", "amount", None,
         "value is a JSON object, but column 'amount' is not JSON"),
    ),
    "array": (
        thing("array", amount=[1, 2]),
        ("MappingError", "th_array", "amount", None,
         "value is a JSON array, but column 'amount' is not JSON"),
    ),
    "bool": (
        thing("bool", paid="perhaps"),
        ("RowRejected", "th_bool", None, "22P02",
         'invalid input syntax for type boolean: "perhaps"'),
    ),
    "long": (
        thing("long", code="x" * 20),
        ("RowRejected", "th_long", None, "22001", "value too long for type character varying(8)"),
    ),
    "negative": (
        thing("negative", qty=-1),
        ("RowRejected", "th_negative", None, "23514",
         'new row for relation "bad_inputs" violates check constraint "bad_inputs_qty_check" '
         '(Failing row contains (th_negative, 1, f, 1, t, ok, l, -1, {"a":1}, {"a": [1, "x"]}).'
         ")"),
    ),
    "nolabel": (
        thing("nolabel", label=None),
        ("RowRejected", "th_nolabel", None, "23502",
         'null value in column "label" of relation "bad_inputs" violates not-null constraint '
         '(Failing row contains (th_nolabel, 1, f, 1, t, ok, null, 1, {"a":1}, {"a": [1, "x"]}).'
         ") [column label]"),
    ),
    "nul_text": (
        thing("nul_text", code="a\x00b"),
        ("MappingError", "th_nul_text", "code", None,
         "text contains a NUL (0x00) character, which Postgres cannot store"),
    ),
    "nul_jsonb": (
        thing("nul_jsonb", payload={"k": "a\x00b"}),
        ("MappingError", "th_nul_jsonb", "payload", None,
         "JSON contains a \\u0000 character, which Postgres jsonb cannot store"),
    ),
}  # fmt: skip
GOOD_RECORDS = [thing(f"good{n}", amount=n) for n in range(5)]
GOOD_RECORDS.append(thing("nul_json", note={"k": "a\x00b"}))  # json (not jsonb) stores \u0000


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bad_inputs(schema_dsn: str) -> None:
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        conn.execute(BAD_INPUTS_DDL)


def select(schema_dsn: str, query: str | sql.Composed) -> list[tuple[Any, ...]]:
    with psycopg.connect(schema_dsn) as conn:
        return conn.execute(query).fetchall()


@pytest.mark.usefixtures("bad_inputs")
@pytest.mark.parametrize("chunk_size", [5000, 3], ids=["one-chunk", "small-chunks"])
async def test_every_driver_gives_a_bad_record_the_same_report(
    driver: str, schema_dsn: str, rng: random.Random, chunk_size: int
) -> None:
    batch = [record for record, _ in BAD.values()] + GOOD_RECORDS
    rng.shuffle(batch)
    sink = TableSink([THING], chunk_size=chunk_size, executemany_below=0)
    result = await apply_once(driver, schema_dsn, sink, batch)
    assert report(result.rejected) == sorted((r for _, r in BAD.values()), key=lambda r: r[1])
    assert (result.inserted, result.stale) == (len(GOOD_RECORDS), 0)
    rows = select(schema_dsn, "SELECT id, amount, note::text FROM bad_inputs ORDER BY id")
    assert rows == [(f"th_good{n}", n, '{"a":1}') for n in range(5)] + [
        ("th_nul_json", 1, '{"k":"a\\u0000b"}')
    ]


@pytest.mark.usefixtures("bad_inputs")
async def test_a_stale_bad_version_is_stale_on_every_driver(driver: str, schema_dsn: str) -> None:
    sink = TableSink([THING], executemany_below=0)
    await apply_once(driver, schema_dsn, sink, [thing("a", 5)])
    result = await apply_once(driver, schema_dsn, sink, [thing("a", 4, amount="lots")])
    assert (result.stale, result.rejected) == (1, [])


@pytest.mark.usefixtures("bad_inputs")
async def test_a_nul_in_jsonb_is_a_mapping_error_and_json_keeps_it_on_every_driver(
    driver: str, schema_dsn: str
) -> None:
    """(Was: psycopg left ``\\u0000`` to Postgres, a RowRejected; the other drivers refused it
    as a MappingError even for a ``json`` column, which stores it.)"""
    sink = TableSink([THING])
    batch = [thing("jsonb", payload={"k": "\x00"}), thing("json", note={"k": "\x00"})]
    result = await apply_once(driver, schema_dsn, sink, batch)
    [error] = result.rejected
    assert isinstance(error, MappingError)
    assert (error.record_id, error.column) == ("th_jsonb", "payload")
    assert select(schema_dsn, "SELECT id, note::text FROM bad_inputs") == [
        ("th_json", '{"k":"\\u0000"}')
    ]


async def test_invalidate_forgets_the_table_on_every_driver(driver: str, schema_dsn: str) -> None:
    """(Was: the cache of the drivers other than psycopg 3 survived ``invalidate()``.)"""
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE things (id text PRIMARY KEY, updated_idx bigint NOT NULL)")
    sink = TableSink([Route("test:thing", "things")])  # standard columns: those the table has
    await apply_once(driver, schema_dsn, sink, [thing("a", 1)])
    with psycopg.connect(schema_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE things ADD COLUMN upstream_id text")
    sink.invalidate()
    await apply_once(driver, schema_dsn, sink, [thing("a", 2), thing("b", 1)])
    assert select(schema_dsn, "SELECT id, upstream_id FROM things ORDER BY id") == [
        ("th_a", "th_a"),
        ("th_b", "th_b"),
    ]


@pytest.mark.parametrize("table", ["raw", "tombstones"])
async def test_two_connections_creating_the_same_table_both_apply_on_every_driver(
    driver: str, schema_dsn: str, table: str
) -> None:
    """Two sessions create the raw (or tombstone) table at once: the second waits for the
    first's commit, then finds the table made, and goes on.

    (Was: on drivers other than psycopg 3 the second failed with a unique violation.)"""
    if table == "raw":
        sink = TableSink([], unrouted="raw", raw_table="raw_records")
    else:
        with psycopg.connect(schema_dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE things (id text PRIMARY KEY, updated_idx bigint NOT NULL, "
                "deleted boolean NOT NULL DEFAULT false)"
            )
        sink = TableSink([Route("test:thing", "things")], hard_delete=True)
    admin = await psycopg.AsyncConnection.connect(schema_dsn, autocommit=True)
    async with admin, session(driver, schema_dsn) as first, session(driver, schema_dsn) as second:
        await first.pid()
        await first.apply(sink, [thing("a")])  # creates the table, not committed yet
        pid = await second.pid()
        applying = asyncio.ensure_future(second.apply(sink, [thing("b")]))

        async def waiting() -> bool:
            cur = await admin.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
            )
            row = await cur.fetchone()
            return row is not None and row[0] == "Lock"

        await wait_until(waiting, "the second session waits for the first one's table")
        await first.commit()
        result = await applying
        await second.commit()
    assert (result.inserted, result.rejected) == (1, [])
    query = sql.SQL("SELECT id FROM {} ORDER BY id").format(
        sql.Identifier("raw_records" if table == "raw" else "things")
    )
    assert select(schema_dsn, query) == [("th_a",), ("th_b",)]
