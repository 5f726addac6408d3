"""upsync's HTTP API: Sequin's Management, Consume and Stream APIs over the stream library.

See ``docs/http-api.md`` for every endpoint with curl examples.
"""

from upsync.api.app import create_app
from upsync.api.auth import (
    TokenInfo,
    create_token,
    create_token_sync,
    ensure_api_schema,
    ensure_api_schema_sync,
    list_tokens,
    list_tokens_sync,
    revoke_token,
    revoke_token_sync,
)
from upsync.api.metrics import Metrics

__all__ = [
    "Metrics",
    "TokenInfo",
    "create_app",
    "create_token",
    "create_token_sync",
    "ensure_api_schema",
    "ensure_api_schema_sync",
    "list_tokens",
    "list_tokens_sync",
    "revoke_token",
    "revoke_token_sync",
]
