"""Managed webhook consumers: a consumer's records POSTed, signed, to a URL.

A consumer with ``kind="webhook"`` keeps in its ``metadata``:

- ``url``: where batches are POSTed (``http://`` or ``https://`` only);
- ``secret_ref``: the id of the credential (``kind="webhook_secret"``) holding the signing secret,
  as :func:`create_webhook_consumer` stores it; or ``secret_env``: the name of an environment
  variable of the engine process holding it. Never the secret itself: metadata is shown in API
  responses, so a ``secret`` key is refused with :class:`~upsync.errors.ConfigurationError`;
- ``batch_size`` (optional, 1–1000, default 100).

Each batch is claimed, POSTed as ``{"data": [{"record": …}, …]}`` with an
``Upsync-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` header (Stripe's scheme;
receivers check it with :func:`verify_signature`) and ``Upsync-Delivery``, an id that is the same
for every retry of the same record versions. A 2xx acks the batch. Anything else — another
status, a timeout, a refused connection — nacks it; the consumer waits a jittered exponential
backoff and tries again. A message that keeps failing for :attr:`RetryPolicy.horizon_s` (24 h by
default), counted from its first failed attempt, becomes a dead letter of the consumer (listed,
replayable; see :func:`list_webhook_dead_letters` for the reason of each), and the consumer's
:func:`webhook_status` shows the failure. Nothing is dropped silently.

The package is split by concern: :mod:`~upsync.engine.webhooks.signing` (the signature),
:mod:`~upsync.engine.webhooks.config` (URL, secret, batch size),
:mod:`~upsync.engine.webhooks.manage` (creating a consumer),
:mod:`~upsync.engine.webhooks.delivery` (one batch: POST and settle),
:mod:`~upsync.engine.webhooks.status` (status and dead letters) and
:mod:`~upsync.engine.webhooks.loop` (the run loop); every public name is importable from here.

The status and the per-message failures live in two small tables of upsync's schema,
``webhook_status`` and ``webhook_failures``, created by upsync's migrations (number 8).
"""

from __future__ import annotations

from upsync.engine.webhooks.config import (
    SECRET_PREFIX,
    WebhookConfig,
    check_url,
    load_webhook_config,
    safe_url,
)
from upsync.engine.webhooks.delivery import (
    DELIVERY_HEADER,
    Attempt,
    RetryPolicy,
    WallClock,
    deliver_webhook_batch,
    encode_batch,
    post_batch,
)
from upsync.engine.webhooks.loop import run_webhook_consumer
from upsync.engine.webhooks.manage import create_webhook_consumer, ensure_webhook_tables
from upsync.engine.webhooks.signing import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    sign_payload,
    verify_signature,
)
from upsync.engine.webhooks.status import (
    WebhookDeadLetter,
    WebhookStatus,
    list_webhook_dead_letters,
    webhook_status,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "DELIVERY_HEADER",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "Attempt",
    "RetryPolicy",
    "WallClock",
    "WebhookConfig",
    "WebhookDeadLetter",
    "WebhookStatus",
    "check_url",
    "create_webhook_consumer",
    "deliver_webhook_batch",
    "encode_batch",
    "ensure_webhook_tables",
    "list_webhook_dead_letters",
    "load_webhook_config",
    "post_batch",
    "run_webhook_consumer",
    "safe_url",
    "sign_payload",
    "verify_signature",
    "webhook_status",
]
