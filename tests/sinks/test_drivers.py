"""The non-psycopg executor's pure parts: placeholders as each driver wants them."""

from __future__ import annotations

import pytest
from psycopg import sql

from upsync.errors import ConfigurationError
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
