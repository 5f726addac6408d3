"""upsync: keep a copy of API data (Stripe first) in your own Postgres.

The public API is what this module exports; submodules are implementation detail unless their
own docs say otherwise (``upsync.errors``, ``upsync.sinks``, ``upsync.testing``).
"""

from upsync.client import AsyncClient, Client
from upsync.errors import (
    ApiUnavailable,
    ConfigurationError,
    Conflict,
    DatabaseUnavailable,
    InvalidAckToken,
    MappingError,
    NotFound,
    RecordError,
    RowRejected,
    TerminalError,
    TransientError,
    Unauthorized,
    UpstreamRejected,
    UpstreamUnavailable,
    UpsyncError,
    WebhookSignatureError,
)
from upsync.records import (
    Message,
    Record,
    SyncRef,
    decode_messages,
    decode_records,
    encode_records,
    record_id,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "ApiUnavailable",
    "AsyncClient",
    "Client",
    "ConfigurationError",
    "Conflict",
    "DatabaseUnavailable",
    "InvalidAckToken",
    "MappingError",
    "Message",
    "NotFound",
    "Record",
    "RecordError",
    "RowRejected",
    "SyncRef",
    "TerminalError",
    "TransientError",
    "Unauthorized",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "UpsyncError",
    "WebhookSignatureError",
    "__version__",
    "decode_messages",
    "decode_records",
    "encode_records",
    "record_id",
]
