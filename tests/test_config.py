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
        ({"UPSYNC_DATABASE_URL": "mysql://u:pw@h/db"}, "is not a Postgres URL"),
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
