"""The operations are tested through both doors: the HTTP API's fixtures and the CLI's."""

from tests.api.conftest import app, db, http, token
from tests.cli.conftest import env, ready, upsync

__all__ = ["app", "db", "env", "http", "ready", "token", "upsync"]
