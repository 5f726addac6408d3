"""Settings for the ``upsync`` command and server.

Each setting is resolved from, in order: a command-line flag, the environment variable
``UPSYNC_<NAME>``, the TOML file (``--config`` or ``UPSYNC_CONFIG``, top-level keys named like
the settings), and the default. A value that does not parse raises
:class:`~upsync.errors.ConfigurationError` naming where it came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from upsync.errors import ConfigurationError
from upsync.redact import redact

__all__ = ["Settings", "load_settings"]


def _default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("upsync"))


@dataclass(frozen=True)
class Settings:
    """Resolved settings."""

    database_url: str | None = None
    """Postgres for upsync's own state; ``None`` starts the embedded Postgres"""
    home: Path | None = None
    """where upsync keeps local state (the embedded database); default: the user data dir"""
    schema: str = "upsync"
    """the schema of upsync's own tables"""
    host: str = "127.0.0.1"
    """address the server listens on"""
    port: int = 8765
    """port the server listens on"""
    log_level: str = "info"
    """debug, info, warning or error"""
    log_format: str = "console"
    """console (for people) or json (for log collectors)"""
    stripe_base_url: str = "https://api.stripe.com"
    """where syncs reach Stripe; point it at a local stand-in for development"""

    @property
    def home_dir(self) -> Path:
        """:attr:`home`, or the per-user default."""
        return self.home or _default_home()

    def describe(self) -> dict[str, Any]:
        """The settings for display, with any password in the database URL masked."""
        shown = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.database_url:
            shown["database_url"] = redact(self.database_url)
        shown["home"] = str(self.home_dir)
        return shown


_CHOICES = {
    "log_level": ("debug", "info", "warning", "error"),
    "log_format": ("console", "json"),
}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve settings from flags (``None`` means not given), environment and TOML file."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    file_path = config_file or (Path(env["UPSYNC_CONFIG"]) if env.get("UPSYNC_CONFIG") else None)
    from_file = _read_toml(file_path) if file_path else {}
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(from_file) - set(known))
    if unknown:
        raise ConfigurationError(
            f"{file_path}: unknown setting(s) {unknown}; known: {sorted(known)}"
        )
    values: dict[str, Any] = {}
    for name in known:
        env_name = f"UPSYNC_{name.upper()}"
        if name in flags:
            values[name] = _parse(name, flags[name], f"--{name.replace('_', '-')}")
        elif env.get(env_name):
            values[name] = _parse(name, env[env_name], env_name)
        elif name in from_file:
            values[name] = _parse(name, from_file[name], f"{file_path}: {name}")
    return Settings(**values)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"config file {path} is not valid TOML: {e}") from None


def _parse(name: str, value: Any, origin: str) -> Any:
    if name == "port":
        try:
            port = int(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{origin}={value!r}: expected a port number") from None
        if not 0 < port < 65536:
            raise ConfigurationError(f"{origin}={port}: a port is between 1 and 65535")
        return port
    if name == "home":
        return Path(str(value)).expanduser()
    text = str(value)
    if name in _CHOICES and text.lower() not in _CHOICES[name]:
        raise ConfigurationError(f"{origin}={text!r}: expected one of {', '.join(_CHOICES[name])}")
    if name == "stripe_base_url" and not text.startswith(("https://", "http://")):
        raise ConfigurationError(f"{origin}={text!r}: expected an http(s) URL")
    if name == "database_url":
        _check_conninfo(text, origin)
    return text.lower() if name in _CHOICES else text


def _check_conninfo(text: str, origin: str) -> None:
    """Refuse what libpq would refuse: a URL or key/value pairs in any order, parsed by libpq
    itself (through psycopg), so every form it documents is taken and nothing else."""
    scheme = text.split("://", 1)[0] if "://" in text else None
    if scheme is not None and scheme not in ("postgresql", "postgres"):
        reason = f"the scheme is {scheme!r}"
    else:
        try:
            conninfo_to_dict(text)
            return
        except psycopg.ProgrammingError as e:
            # libpq quotes the whole value when it cannot find a key in it: keep that out
            # (it may hold a password), keep its reason when it names only a key
            reason = str(e) if text not in str(e) else "no key=value pairs"
    raise ConfigurationError(
        f"{origin}: not a Postgres URL or connection string ({reason}); expected "
        "postgresql://user@host:5432/db or key=value pairs such as 'host=… dbname=…'"
    )
