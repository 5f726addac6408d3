"""upsync's HTTP API: Sequin's Management, Consume and Stream APIs over the stream library.

See ``docs/http-api.md`` for every endpoint with curl examples.
"""

from upsync.api.app import create_app
from upsync.api.metrics import Metrics
from upsync.ops.tokens import (
    TokenInfo,
    create_token,
    create_token_sync,
    ensure_api_schema,
    ensure_api_schema_sync,
    list_tokens,
    revoke_token,
)

__all__ = [
    "Metrics",
    "TokenInfo",
    "create_app",
    "create_token",
    "create_token_sync",
    "ensure_api_schema",
    "ensure_api_schema_sync",
    "list_tokens",
    "revoke_token",
]
