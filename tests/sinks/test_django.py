"""Django: routes from models; apply on Django's connection, in or out of ``atomic()``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from psycopg.conninfo import conninfo_to_dict

if not settings.configured:
    # the real database comes per test (the `db` fixture): the schema changes every time
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unset"}},
        INSTALLED_APPS=["tests.sinks.django_app"],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()

from django.db import connections, migrations, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.state import ProjectState
from django.db.transaction import TransactionManagementError

from tests.sinks import _orm_scenario as scenario
from tests.sinks.django_app.models import Invoice, Subscription
from upsync.errors import ConfigurationError, RowRejected
from upsync.sinks import Route, TableSink, create_table_text
from upsync.sinks.django import apply, route_for_model

GUIDE_FIELDS = (
    "id",
    "updated_idx",
    "deleted",
    "stripe_customer_id",
    "plan_id",
    "quantity",
    "internal_id",
)


@pytest.fixture
def db(schema_dsn: str) -> Iterator[BaseDatabaseWrapper]:
    """Django's default connection, in the test's schema, with the guide's table created."""
    params = conninfo_to_dict(schema_dsn)
    connection = connections["default"]
    connection.close()
    connection.settings_dict.update(
        NAME=params["dbname"],
        USER=params.get("user", ""),
        PASSWORD=params.get("password", ""),
        HOST=params.get("host", ""),
        PORT=params.get("port", ""),
        OPTIONS={"options": params["options"]},  # search_path = the test's schema
    )
    with connection.schema_editor() as editor:
        editor.create_model(Subscription)
    yield connection
    connection.close()


def subscription_sink(**kwargs: Any) -> TableSink:
    route = route_for_model(Subscription, "stripe:subscription", columns=scenario.GUIDE_COLUMNS)
    return TableSink([route], **kwargs)


def orm_rows() -> list[scenario.Row]:
    return list(Subscription.objects.order_by("id").values_list(*GUIDE_FIELDS))


# --- routes -------------------------------------------------------------------------------


def test_route_for_model_takes_db_table_and_standard_columns_from_the_model() -> None:
    route = route_for_model(Subscription, "stripe:subscription", columns=scenario.GUIDE_COLUMNS)
    assert (route.table, route.schema, route.deleted_column) == ("subscriptions", None, "deleted")
    assert "sync_metadata" in route.standard
    assert "data" not in route.standard  # the model has no such column
    assert dict(route.columns) == scenario.GUIDE_COLUMNS


def test_route_for_model_translates_field_names_to_column_names() -> None:
    route = route_for_model(
        Invoice,
        "stripe:invoice",
        columns={
            "stripe_id": "id",
            "version": "updated_idx",
            "customer": "data.customer",
            "subscription": "data.sub",
        },
        key_column="stripe_id",
        version_column="version",
        schema="stripe",
    )
    assert route.qualified_name == ("stripe", "invoices")
    assert dict(route.columns) == {
        "stripe_id": "id",
        "version": "updated_idx",
        "stripe_customer_id": "data.customer",
        "subscription_id": "data.sub",
    }
    assert (route.key_column, route.version_column, route.deleted_column) == (
        "stripe_id",
        "version",
        None,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"columns": {"nope": "data.x"}}, "no field or column 'nope'"),
        ({"key_column": "customer", "version_column": "version"}, "primary key or unique"),
        (
            {
                "columns": {"stripe_id": "id"},
                "key_column": "stripe_id",
                "version_column": "version",
            },
            "does not map column 'version'",
        ),
    ],
    ids=["unknown-field", "key-not-unique", "version-unmapped"],
)
def test_route_for_model_refuses_what_the_guarded_upsert_cannot_serve(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        route_for_model(Invoice, "stripe:invoice", **kwargs)


# --- apply --------------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft-delete", "hard-delete"])
def test_apply_outside_atomic_commits_each_batch_and_keeps_highest_versions(
    db: BaseDatabaseWrapper, hard_delete: bool
) -> None:
    sink = subscription_sink(hard_delete=hard_delete)
    results = [apply(sink, batch) for batch in scenario.BATCHES]
    db.close()  # a fresh connection sees only what was committed
    scenario.check(results, orm_rows(), hard_delete=hard_delete)


def test_apply_inside_atomic_rolls_back_with_the_caller(db: BaseDatabaseWrapper) -> None:
    sink = subscription_sink()
    with transaction.atomic():
        result = apply(sink, scenario.BATCHES[0])
        assert result.inserted == 3
        assert Subscription.objects.count() == 3
        transaction.set_rollback(True)
    assert Subscription.objects.count() == 0


def test_apply_inside_atomic_commits_with_the_callers_own_writes(db: BaseDatabaseWrapper) -> None:
    sink = subscription_sink()
    with transaction.atomic():
        Subscription.objects.create(id="mine", updated_idx=1)
        with transaction.atomic():  # a nested block: the batch joins its savepoint
            results = [apply(sink, batch) for batch in scenario.BATCHES]
    db.close()
    rows = orm_rows()
    assert [r for r in rows if r[0] == "mine"] == [("mine", 1, False, None, None, None, None)]
    scenario.check(results, [r for r in rows if r[0] != "mine"])


def test_bad_record_is_reported_and_the_good_ones_land(db: BaseDatabaseWrapper) -> None:
    sink = subscription_sink()
    with transaction.atomic():
        result = apply(sink, scenario.BATCHES[0])
    [error] = result.rejected
    assert isinstance(error, RowRejected)
    assert (error.record_id, error.sqlstate) == (scenario.rid("BAD"), "22001")
    assert Subscription.objects.count() == 3


def test_apply_refuses_a_transaction_django_marked_for_rollback(db: BaseDatabaseWrapper) -> None:
    with transaction.atomic():
        transaction.set_rollback(True)
        with pytest.raises(TransactionManagementError):
            apply(subscription_sink(), scenario.BATCHES[0])
    assert Subscription.objects.count() == 0


def test_apply_leaves_djangos_cursor_factory_in_place(db: BaseDatabaseWrapper) -> None:
    db.ensure_connection()
    raw: Any = db.connection
    factory = raw.cursor_factory
    apply(subscription_sink(), scenario.BATCHES[0])
    assert raw.cursor_factory is factory
    assert Subscription.objects.filter(quantity=12).exists()  # Django's own queries still work


def test_runsql_migration_creates_a_table_the_sink_fills(db: BaseDatabaseWrapper) -> None:
    ddl = create_table_text(
        "stripe:subscription",
        table="guide_subscriptions",
        column_types={
            "stripe_customer_id": "varchar(32)",
            "plan_id": "text",
            "quantity": "integer",
            "internal_id": "text",
        },
    )
    operation = migrations.RunSQL(ddl, reverse_sql="DROP TABLE guide_subscriptions")
    state = ProjectState()
    with db.schema_editor() as editor:
        operation.database_forwards("django_app", editor, state, state)
    sink = TableSink(
        [Route("stripe:subscription", "guide_subscriptions", columns=scenario.GUIDE_COLUMNS)]
    )
    results = [apply(sink, batch) for batch in scenario.BATCHES]
    with db.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(GUIDE_FIELDS)} FROM guide_subscriptions")  # noqa: S608
        rows = cursor.fetchall()
    scenario.check(results, rows)
