"""The command group, its global options, and how errors reach a person."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import psycopg

from upsync.config import Settings, load_settings
from upsync.errors import ConfigurationError, TransientError, UpsyncError
from upsync.logs import configure_logging
from upsync.redact import redact

__all__ = ["Context", "main", "pass_ctx"]

EXIT_ERROR = 1
EXIT_UNEXPECTED = 2


@dataclass
class Context:
    """What every command gets: resolved settings and the debug switch."""

    settings: Settings
    debug: bool = False
    json_output: bool = False
    _cleanup: list[Any] = field(default_factory=list)


pass_ctx = click.make_pass_decorator(Context)


class _Group(click.Group):
    """Turns upsync's errors into one actionable line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv or bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:
            if debug:
                raise
            _fail(e)


def _fail(error: BaseException) -> None:
    message, hint = _explain(error)
    # one line, so scripts and people see what happened and what to do together
    line = f"error: {message}" + (f" — {hint}" if hint else "")
    click.secho(redact(" ".join(line.split())), fg="red", err=True)
    code = EXIT_ERROR if isinstance(error, UpsyncError | psycopg.Error) else EXIT_UNEXPECTED
    sys.exit(code)


def _explain(error: BaseException) -> tuple[str, str | None]:
    if isinstance(error, psycopg.OperationalError):
        return (
            f"cannot reach the database: {str(error).strip().splitlines()[0]}",
            "Check UPSYNC_DATABASE_URL (or --database-url), or unset it to use the embedded "
            "Postgres.",
        )
    if isinstance(error, psycopg.Error):
        return f"database error: {str(error).strip().splitlines()[0]}", None
    if isinstance(error, ConfigurationError):
        return str(error), None
    if isinstance(error, TransientError):
        return str(error), "This may pass if you try again shortly."
    if isinstance(error, UpsyncError):
        return str(error), None
    return (
        f"unexpected {type(error).__name__}: {error}",
        "Run again with --debug for the traceback, and please report it.",
    )


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML settings file (also UPSYNC_CONFIG).",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="Postgres for upsync's state (also UPSYNC_DATABASE_URL); default: embedded Postgres.",
)
@click.option("--home", type=click.Path(path_type=Path), help="Local state dir (UPSYNC_HOME).")
@click.version_option(package_name="upsync")
@click.pass_context
def main(
    ctx: click.Context,
    debug: bool,
    config: Path | None,
    database_url: str | None,
    home: Path | None,
) -> None:
    """upsync keeps a copy of your Stripe data in your own Postgres."""
    try:
        settings = load_settings({"database_url": database_url, "home": home}, config_file=config)
    except ConfigurationError as e:
        if debug:
            raise
        _fail(e)
    configure_logging("debug" if debug else settings.log_level, settings.log_format)
    ctx.obj = Context(settings=settings, debug=debug)
