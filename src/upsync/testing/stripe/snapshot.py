"""``previous_attributes`` diffs of JSON-like objects."""

from __future__ import annotations

from typing import Any

__all__ = ["previous_attributes"]


def previous_attributes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The prior values of what changed from ``before`` to ``after``, as Stripe reports them.

    Plain hashes are diffed key by key (a key that did not exist before reports ``null``);
    arrays and embedded lists are reported whole, like Stripe does.
    """
    out: dict[str, Any] = {}
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and _is_hash(old) and _is_hash(new):
            out[key] = previous_attributes(old, new)
        else:
            out[key] = old
    return out


def _is_hash(value: Any) -> bool:
    return isinstance(value, dict) and value.get("object") != "list"
