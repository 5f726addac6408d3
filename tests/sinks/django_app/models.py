"""The guide's model in Django, plus one with renamed columns and a foreign key."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from django.db import models

if TYPE_CHECKING:  # field types for mypy (django-stubs without its plugin)
    Text: TypeAlias = models.TextField[str | None, str | None]
    Char: TypeAlias = models.CharField[str | None, str | None]
    Int: TypeAlias = models.IntegerField[int | None, int | None]
    BigInt: TypeAlias = models.BigIntegerField[int, int]
    Bool: TypeAlias = models.BooleanField[bool, bool]
    Time: TypeAlias = models.DateTimeField[datetime | None, datetime | None]


class Subscription(models.Model):
    """Sequin's upsert guide's ``subscriptions`` table: standard columns plus four mapped ones."""

    id: Text = models.TextField(primary_key=True)
    upstream_id: Text = models.TextField(null=True)
    deleted: Bool = models.BooleanField(default=False)
    updated_idx: BigInt = models.BigIntegerField()
    sync_id: Text = models.TextField(null=True)
    sync_external_id: Text = models.TextField(null=True)
    sync_metadata: models.JSONField[Any, Any] = models.JSONField(null=True)
    upstream_created_at: Time = models.DateTimeField(null=True)
    upstream_updated_at: Time = models.DateTimeField(null=True)
    stripe_customer_id: Char = models.CharField(max_length=32, null=True)
    plan_id: Text = models.TextField(null=True)
    quantity: Int = models.IntegerField(null=True)
    internal_id: Text = models.TextField(null=True)

    class Meta:
        app_label = "django_app"
        db_table = "subscriptions"


class Invoice(models.Model):
    """Field names that differ from column names: ``customer`` is ``stripe_customer_id``."""

    stripe_id: Text = models.TextField(unique=True)
    version: BigInt = models.BigIntegerField()
    customer: Text = models.TextField(db_column="stripe_customer_id", null=True)
    subscription: models.ForeignKey[Subscription | None, Subscription | None] = models.ForeignKey(
        Subscription, on_delete=models.DO_NOTHING, db_constraint=False, null=True
    )

    class Meta:
        app_label = "django_app"
        db_table = "invoices"
