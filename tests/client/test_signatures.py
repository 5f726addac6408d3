"""``Client`` and ``AsyncClient`` show their real, typed signatures (help(), IDEs, docs), and
mirror each other: the same methods with the same parameters."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from upsync.client import AsyncClient, Client

#: The one method that differs by name: closing (httpx's convention).
_CLOSE = {"close": "aclose"}


def _public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize("cls", [Client, AsyncClient], ids=lambda c: c.__name__)
def test_every_public_client_method_has_a_real_typed_signature(cls: type) -> None:
    methods = _public_methods(cls)
    assert "next" in methods and "create_consumer" in methods
    for name, method in methods.items():
        sig = inspect.signature(method, eval_str=True)
        where = f"{cls.__name__}.{name}{sig}"
        params = list(sig.parameters.values())
        assert params[0].name == "self", where
        for p in params[1:]:
            assert p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD), where
            assert p.annotation is not p.empty, f"{where}: {p.name} has no annotation"
            assert not isinstance(p.annotation, str), f"{where}: {p.name}: a string, not a type"
        assert sig.return_annotation is not sig.empty, where
        assert not isinstance(sig.return_annotation, str), where
        assert inspect.getdoc(method), f"{where} has no docstring"


def test_client_and_async_client_have_the_same_methods_with_the_same_parameters() -> None:
    blocking = _public_methods(Client)
    asynchronous = _public_methods(AsyncClient)
    assert {_CLOSE.get(n, n) for n in blocking} == set(asynchronous)
    for name, method in blocking.items():
        twin = asynchronous[_CLOSE.get(name, name)]
        assert inspect.signature(method) == inspect.signature(twin), name
        if name not in _CLOSE:
            assert inspect.getdoc(method) == inspect.getdoc(twin), name
        assert not inspect.iscoroutinefunction(method), name
        assert inspect.iscoroutinefunction(twin), name


def test_bound_methods_show_their_parameters_without_self() -> None:
    with Client("http://upsync.test", "upsync_tok_x") as client:
        sig = inspect.signature(client.next)
    assert list(sig.parameters) == ["consumer", "batch_size", "wait_for_ms"]
    assert sig.parameters["batch_size"].default == 1
    assert sig.parameters["batch_size"].kind is inspect.Parameter.KEYWORD_ONLY
