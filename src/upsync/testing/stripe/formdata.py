"""Rails-style bracket notation, as Stripe reads form bodies and query strings.

``items[0][price]=p&metadata[k]=v&expand[]=customer`` becomes
``{"items": [{"price": "p"}], "metadata": {"k": "v"}, "expand": ["customer"]}``.
Arrays may be indexed (``expand[0]``, what stripe-python sends) or appended (``expand[]``,
what curl examples use). Values stay strings; :class:`Params` coerces them per parameter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import invalid_request

__all__ = ["Params", "decode_pairs"]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
# maps whose keys are user data, never array indexes
_FREE_MAPS = frozenset({"metadata"})


class _Seq(dict[str, Any]):
    """An array under construction: keys are indexes, ``[]`` appends."""


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Decode ``(key, value)`` pairs in bracket notation into nested dicts and lists.

    Raises:
        StripeError: a key is malformed (unbalanced brackets).
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise invalid_request(f"Invalid parameter name: {key}", param=key)
        parts = [match.group(1), *_PART.findall(match.group(2))]
        _assign(root, parts, value, key)
    finished: dict[str, Any] = _finish(root)
    return finished


def _assign(node: dict[str, Any], parts: list[str], value: str, key: str) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = None if last else parts[i + 1]
        if part == "" and isinstance(node, _Seq):
            # `[]` appends; `a[][b]=1&a[][c]=2` would be ambiguous, so each `[]` opens a new slot
            part = str(len(node))
        if last:
            node[part] = value
            return
        child = node.get(part)
        if not isinstance(child, dict):
            is_seq = nxt is not None and (nxt == "" or nxt.isdigit()) and part not in _FREE_MAPS
            child = _Seq() if is_seq else {}
            node[part] = child
        node = child
    raise invalid_request(f"Invalid parameter name: {key}", param=key)  # pragma: no cover


def _finish(value: Any) -> Any:
    if isinstance(value, _Seq):
        return [_finish(value[k]) for k in sorted(value, key=_index)]
    if isinstance(value, dict):
        return {k: _finish(v) for k, v in value.items()}
    return value


def _index(key: str) -> int:
    return int(key) if key.isdigit() else 1 << 30


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class Params:
    """Typed access to decoded parameters; bad values become 400s naming the parameter.

    An empty string means "unset" in Stripe's form encoding, so getters return ``None`` for it.
    """

    def __init__(self, data: dict[str, Any], prefix: str = "") -> None:
        self.data = data
        self._prefix = prefix

    def name(self, key: str) -> str:
        """The parameter's full name, e.g. ``items[0][price]``."""
        return f"{self._prefix}[{key}]" if self._prefix else key

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value == "":
            return None
        if value is not None and not isinstance(value, str):
            raise invalid_request(f"Invalid string: {self.name(key)}", param=self.name(key))
        return value

    def req_str(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise invalid_request(
                f"Missing required param: {self.name(key)}.", self.name(key), "parameter_missing"
            )
        return value

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid_request(
                f"Invalid integer: {value}", param=self.name(key), code="parameter_invalid_integer"
            ) from None

    def number(self, key: str, default: float | None = None) -> float | None:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise invalid_request(f"Invalid decimal: {value}", param=self.name(key)) from None

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, str) and value.lower() in _TRUE:
            return True
        if isinstance(value, str) and value.lower() in _FALSE:
            return False
        raise invalid_request(f"Invalid boolean: {value}", param=self.name(key))

    def array(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, dict):
            raise invalid_request(f"Invalid array: {self.name(key)}", param=self.name(key))
        return value if isinstance(value, list) else [value]

    def hash(self, key: str) -> Params:
        value = self.data.get(key)
        if value is None or value == "":
            return Params({}, self.name(key))
        if not isinstance(value, dict):
            raise invalid_request(f"Invalid object: {self.name(key)}", param=self.name(key))
        return Params(value, self.name(key))

    def items(self, key: str) -> list[Params]:
        """An array of hashes, e.g. ``items[0][price]``."""
        out = []
        for i, value in enumerate(self.array(key)):
            if not isinstance(value, dict):
                raise invalid_request(f"Invalid hash: {self.name(key)}[{i}]", self.name(key))
            out.append(Params(value, f"{self.name(key)}[{i}]"))
        return out

    def metadata(self, old: dict[str, str] | None = None) -> dict[str, str] | None:
        """``old`` metadata updated by the ``metadata`` hash; ``None`` when it is not given.

        Keys set to ``""`` are removed, and ``metadata=""`` removes them all (Stripe's rules).
        """
        if "metadata" not in self.data:
            return None
        value = self.data["metadata"]
        if value == "":
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise invalid_request("Invalid hash: metadata", param="metadata")
        merged = dict(old or {})
        for k, v in value.items():
            if v == "":
                merged.pop(k, None)
            else:
                merged[k] = v
        return merged
