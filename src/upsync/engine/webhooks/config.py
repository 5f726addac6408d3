"""A webhook consumer's destination: URL, signing secret and batch size, from its metadata."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass, field

from upsync.errors import ConfigurationError, NotFound
from upsync.stream.catalog import reveal_secret
from upsync.stream.models import Consumer
from upsync.stream.tables import DEFAULT_SCHEMA, AConn

#: Generated secrets start with this, so :func:`upsync.redact.redact` masks them anywhere.
SECRET_PREFIX = "upsync_whk_"
_MAX_BATCH = 1000


@dataclass(frozen=True)
class WebhookConfig:
    """A webhook consumer's destination, read from its metadata (secret resolved)."""

    url: str
    secret: str = field(repr=False)
    batch_size: int = 100

    @property
    def safe_url(self) -> str:
        """The URL without credentials, query or fragment: what logs and errors show."""
        return safe_url(self.url)


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: user info and query may carry secrets."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_url(url: object) -> str:
    """``url`` if it is an absolute http(s) URL, else :class:`ConfigurationError`."""
    if not isinstance(url, str) or not url:
        raise ConfigurationError("metadata.url: expected the webhook's http(s) URL")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(f"metadata.url: {safe_url(url)!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"metadata.url: expected an http:// or https:// URL, got scheme {parts.scheme!r}"
        )
    return url


def _batch_size(value: object) -> int:
    if value is None:
        return 100
    if type(value) is not int or not 1 <= value <= _MAX_BATCH:
        raise ConfigurationError(f"metadata.batch_size: expected an integer 1-{_MAX_BATCH}")
    return value


async def load_webhook_config(
    conn: AConn, consumer: Consumer, *, schema: str = DEFAULT_SCHEMA
) -> WebhookConfig:
    """Read and check a webhook consumer's metadata, resolving its signing secret.

    Raises :class:`ConfigurationError` naming the bad key (never showing a secret).
    """
    meta = consumer.metadata
    if consumer.kind != "webhook":
        raise ConfigurationError(f"consumer {consumer.name!r} is a {consumer.kind!r} consumer")
    if "secret" in meta:
        raise ConfigurationError(
            "metadata.secret: a signing secret must not be kept in metadata (API responses show "
            "it); use metadata.secret_ref (a credential id) or metadata.secret_env"
        )
    url = check_url(meta.get("url"))
    size = _batch_size(meta.get("batch_size"))
    if meta.get("secret_ref"):
        try:
            secret = await reveal_secret(conn, str(meta["secret_ref"]), schema=schema)
        except NotFound:
            raise ConfigurationError(
                "metadata.secret_ref: no credential with that id holds the signing secret"
            ) from None
    elif meta.get("secret_env"):
        secret = os.environ.get(str(meta["secret_env"]), "")
        if not secret:
            raise ConfigurationError(
                f"metadata.secret_env: environment variable {meta['secret_env']!r} is not set"
            )
    else:
        raise ConfigurationError("metadata: expected secret_ref or secret_env for the secret")
    return WebhookConfig(url, secret, size)
