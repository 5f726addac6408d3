"""Django for the documentation's examples: settings, an app for their models, a database.

Django's settings are configured once per process; ``tests/sinks/test_django.py`` may have done
it already, so the documentation's app is added with ``override_settings`` rather than assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg.conninfo import conninfo_to_dict

APP = "tests.docs.docs_django_app"
MODULE = f"{APP}.models"
"""The ``__name__`` a document's namespace gets, so its models belong to :data:`APP`."""


def use_database(dsn: str) -> Callable[[], None]:
    """Point Django's default connection at ``dsn`` with :data:`APP` installed; returns the undo."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unset"}},
            INSTALLED_APPS=[],
            USE_TZ=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
        django.setup()
    from django.db import connections
    from django.test.utils import override_settings

    override = override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, APP])
    override.enable()
    connection = connections["default"]
    saved: dict[str, Any] = dict(connection.settings_dict)
    connection.close()
    params = conninfo_to_dict(dsn)
    connection.settings_dict.update(
        NAME=params["dbname"],
        USER=params.get("user", ""),
        PASSWORD=params.get("password", ""),
        HOST=params.get("host", ""),
        PORT=params.get("port", ""),
    )

    def undo() -> None:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
        override.disable()

    return undo
