"""The ``upsync`` command: thin views over the same library operations as the HTTP API.

Every failure the command can meet prints one line saying what happened and what to do, and
exits non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from upsync.cli import commands as _commands  # noqa: F401  (registers the commands)
from upsync.cli import consumers_cmd as _consumers_cmd  # noqa: F401
from upsync.cli import demo as _demo  # noqa: F401
from upsync.cli import manage as _manage  # noqa: F401
from upsync.cli import server_cmd as _server_cmd  # noqa: F401
from upsync.cli import status_cmd as _status_cmd  # noqa: F401
from upsync.cli import syncs_cmd as _syncs_cmd  # noqa: F401
from upsync.cli import tail_cmd as _tail_cmd  # noqa: F401
from upsync.cli.app import Context
from upsync.cli.app import main as _group

__all__ = ["Context", "main"]


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return _group.main(args=argv, prog_name="upsync")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

_ = click  # the package re-exports nothing else from click
