"""Settings precedence and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from upsync import ConfigurationError
from upsync.config import load_settings


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    file = tmp_path / "upsync.toml"
    file.write_text('port = 9000\nhost = "0.0.0.0"\nlog_level = "warning"\n')
    env = {"UPSYNC_PORT": "9001", "UPSYNC_LOG_LEVEL": "error"}
    s = load_settings({"port": 9002, "host": None}, env=env, config_file=file)
    assert (s.port, s.host, s.log_level, s.schema) == (9002, "0.0.0.0", "error", "upsync")
    s = load_settings({}, env=env, config_file=file)
    assert s.port == 9001


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"UPSYNC_PORT": "http"}, "UPSYNC_PORT='http': expected a port number"),
        ({"UPSYNC_PORT": "70000"}, "between 1 and 65535"),
        ({"UPSYNC_LOG_LEVEL": "loud"}, "expected one of debug, info"),
        ({"UPSYNC_DATABASE_URL": "mysql://u:pw@h/db"}, "not a Postgres URL or connection string"),
    ],
)
def test_bad_values_name_their_origin(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment) as info:
        load_settings({}, env=env)
    assert "pw" not in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings({}, env={}, config_file=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = \n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings({}, env={}, config_file=bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("prot = 1\n")
    with pytest.raises(ConfigurationError, match=r"unknown setting\(s\) \['prot'\]"):
        load_settings({}, env={}, config_file=typo)


def test_describe_masks_the_database_password() -> None:
    s = load_settings({"database_url": "postgresql://app:s3cret@db:5432/x"}, env={})
    assert "s3cret" not in str(s.describe())


@pytest.mark.parametrize(
    "dsn",
    [
        "dbname=x host=127.0.0.1 user=postgres",
        "host=127.0.0.1 dbname=x",
        "user=postgres dbname=x port=5432",
        "dbname='my db' host=/run/postgresql",
        "postgresql://postgres@127.0.0.1:5432/x",
        "postgres://postgres@127.0.0.1/x",
        "postgresql:///x?host=/run/postgresql",
        "postgresql://",
    ],
    ids=[
        "keyvalue-dbname-first",
        "keyvalue-host-first",
        "keyvalue-without-host",
        "keyvalue-quoted-value",
        "url-postgresql",
        "url-postgres",
        "url-socket",
        "url-bare",
    ],
)
def test_database_url_takes_any_libpq_connection_string(dsn: str) -> None:
    """A URL or key/value string libpq accepts is taken as given, whatever the key order."""
    assert load_settings({}, env={"UPSYNC_DATABASE_URL": dsn}).database_url == dsn
    assert load_settings({"database_url": dsn}, env={}).database_url == dsn


@pytest.mark.parametrize(
    "dsn",
    [
        "mysql://u:pw@h/db",
        "dbname=x password=pw bogus=1",
        "dbname=x password=pw host",
        "db.internal:5432/app",
        "http://pw@example.com",
    ],
    ids=["other-scheme", "unknown-key", "key-without-value", "no-scheme", "http-url"],
)
def test_a_database_url_libpq_refuses_is_an_error_without_its_password(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="not a Postgres URL or connection string") as info:
        load_settings({}, env={"UPSYNC_DATABASE_URL": dsn})
    assert "pw" not in str(info.value)
    assert "UPSYNC_DATABASE_URL" in str(info.value)


def test_stripe_base_url_is_read_from_the_toml_file(tmp_path: Path) -> None:
    """Documented in docs/configuration.md: a file can point every command at a stand-in."""
    file = tmp_path / "upsync.toml"
    file.write_text('stripe_base_url = "http://127.0.0.1:12111"\n')
    assert load_settings({}, env={}, config_file=file).stripe_base_url == "http://127.0.0.1:12111"
    env = {"UPSYNC_STRIPE_BASE_URL": "http://127.0.0.1:9"}
    assert load_settings({}, env=env, config_file=file).stripe_base_url == "http://127.0.0.1:9"
