"""The curated public API: what ``import upsync`` offers is deliberate and importable."""

from __future__ import annotations

import importlib

import pytest

import upsync

PUBLIC_MODULES = ["upsync", "upsync.errors", "upsync.records", "upsync.sinks", "upsync.stream"]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_exported_name_exists(name: str) -> None:
    # (the order of __all__ is ruff's job: RUF022)
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_every_error_is_in_the_one_tree() -> None:
    import upsync.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, upsync.UpsyncError), name
        assert name in upsync.__all__, f"{name} is not exported from upsync"


def test_the_essentials_are_at_the_top_level() -> None:
    for name in ("Record", "decode_records", "record_id", "Client", "AsyncClient", "UpsyncError"):
        assert name in upsync.__all__
