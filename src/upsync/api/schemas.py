"""Request bodies, validated by pydantic so a bad one gets a 422 naming its field.

Unknown fields are refused (a typo must not be silently ignored). Aliases that Sequin's docs
use interchangeably are accepted: ``ack_wait`` for ``ack_wait_ms``, ``secret_key`` for
``secret``. Range checks of consumer settings are left to the stream library, whose messages
name the setting too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictInt, model_validator

from upsync.ops.limits import MAX_NAME_LENGTH
from upsync.stream.models import CONSUMER_DEFAULTS

__all__ = [
    "AckBody",
    "ConsumerCreate",
    "ConsumerUpdate",
    "CredentialCreate",
    "CredentialProperties",
    "NextBody",
    "RateLimit",
    "ReplayBody",
    "RewindBody",
    "StreamCreate",
    "SyncCreate",
    "SyncCredential",
    "SyncUpdate",
    "WebhookConsumerCreate",
]

MAX_BATCH_SIZE = 1000
Json = dict[str, Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def given(self) -> dict[str, Any]:
        """The fields the client actually sent (``null`` included), by field name."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class StreamCreate(_Body):
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    metadata: Json = Field(default_factory=dict)


class CredentialProperties(_Body):
    kind: str = Field(min_length=1, description="e.g. 'stripe_key'")
    secret: str = Field(
        min_length=1,
        validation_alias=AliasChoices("secret", "secret_key"),
        description="The API key; stored, never returned (shown as '****').",
    )
    name: str | None = None
    test: bool = False


class SyncCredential(_Body):
    """A credential created together with its sync."""

    properties: CredentialProperties
    metadata: Json = Field(default_factory=dict)


class CredentialCreate(SyncCredential):
    provider: str | None = Field(
        default=None, description="Defaults to the part of properties.kind before '_'."
    )


class RateLimit(_Body):
    allowed_requests: int = Field(ge=1)
    interval: int = Field(ge=1, description="seconds")
    max_concurrent_requests: int = Field(default=0, ge=0)


class SyncCreate(_Body):
    provider: str = Field(min_length=1)
    stream_id: str = Field(description="The stream's id or name, e.g. 'default'.")
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    collection_ids: list[str] = Field(min_length=1)
    credential: SyncCredential | None = None
    credential_id: str | None = None
    external_id: str | None = None
    metadata: Json = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    max_age_days: int | None = Field(default=None, ge=1)
    status: Literal["active", "disabled"] = "active"

    @model_validator(mode="after")
    def _one_credential(self) -> SyncCreate:
        if (self.credential is None) == (self.credential_id is None):
            raise ValueError("give exactly one of credential or credential_id")
        return self


class SyncUpdate(_Body):
    name: str | None = Field(default=None, min_length=1)
    collection_ids: list[str] | None = Field(default=None, min_length=1)
    credential_id: str | None = None
    external_id: str | None = None
    metadata: Json | None = None
    rate_limit: RateLimit | None = None
    status: Literal["active", "disabled"] | None = None


_ACK_WAIT = AliasChoices("ack_wait_ms", "ack_wait")


class ConsumerCreate(_Body):
    stream_id: str = Field(description="The stream's id or name, e.g. 'default'.")
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    filters: dict[str, str] | None = None
    deliver_policy: str = CONSUMER_DEFAULTS.deliver_policy
    ack_wait_ms: StrictInt = Field(
        default=CONSUMER_DEFAULTS.ack_wait_ms, validation_alias=_ACK_WAIT
    )
    max_deliver: StrictInt = Field(
        default=CONSUMER_DEFAULTS.max_deliver,
        description="Attempts before a record becomes a dead letter; -1: unlimited.",
    )
    max_ack_pending: StrictInt = CONSUMER_DEFAULTS.max_ack_pending
    metadata: Json = Field(default_factory=dict)
    exist_ok: bool = Field(
        default=False,
        description="Return the consumer of that name if it exists with the same settings "
        "(409 naming the differing settings otherwise), so a worker may start twice.",
    )


class WebhookConsumerCreate(ConsumerCreate):
    url: str = Field(description="http(s) URL that receives signed batches of records.")
    secret: str | None = Field(
        default=None,
        min_length=16,
        description="The signing secret; a random one is made (and returned once) if omitted.",
    )


class ConsumerUpdate(_Body):
    # accepted only to answer with a clear message: both are fixed at creation
    deliver_policy: str | None = Field(default=None, json_schema_extra={"readOnly": True})
    stream_id: str | None = Field(default=None, json_schema_extra={"readOnly": True})
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH)
    filters: dict[str, str] | None = None
    ack_wait_ms: StrictInt | None = Field(default=None, validation_alias=_ACK_WAIT)
    max_deliver: StrictInt | None = None
    max_ack_pending: StrictInt | None = None
    metadata: Json | None = None


class NextBody(_Body):
    batch_size: StrictInt | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE)
    wait_for: StrictInt | None = Field(
        default=None, ge=0, validation_alias=AliasChoices("wait_for", "wait_for_ms")
    )


class AckBody(_Body):
    ack_tokens: list[str] = Field(min_length=1)


class ReplayBody(_Body):
    record_ids: list[str] | None = Field(
        default=None, description="Dead letters to replay; all of them when omitted."
    )


class RewindBody(_Body):
    after_idx: StrictInt | None = Field(default=None, ge=0)
    after_cursor: str | None = Field(
        default=None, description="A cursor from GET /v1/records: re-deliver what follows it."
    )

    @model_validator(mode="after")
    def _one_position(self) -> RewindBody:
        if self.after_idx is not None and self.after_cursor is not None:
            raise ValueError("give at most one of after_idx or after_cursor")
        return self
