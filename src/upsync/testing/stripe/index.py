"""An ordered index of one object type: newest-first lists and cursors in O(log n).

Objects are kept sorted by ``(created, seq)``: ``seq`` is a store-wide counter, so objects
created in the same second keep a stable order (the tie-break Stripe's lists also have).
Removing an object keeps its key, so a cursor naming a since-deleted object still works.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .packing import pack, unpack, unpack_json

__all__ = ["Entry", "Index", "Key"]

Key = tuple[int, int]
"""``(created, seq)``: the sort key of an object."""


class Entry:
    """One stored object: its type, id, sort key and packed JSON (nested lists not rendered).

    The object is kept packed (:mod:`.packing`), not as a dict: :attr:`obj` decodes a fresh
    copy on every read; write a changed object back by assigning it (:meth:`Store.change`
    does this).
    """

    __slots__ = ("_packed", "deleted", "id", "key", "tag", "type", "visible_at")

    def __init__(
        self, type: str, obj: dict[str, Any], key: Key, deleted: bool = False, tag: str = ""
    ) -> None:
        self.type = type
        self.id: str = obj["id"]
        self.key = key
        self.deleted = deleted
        self.tag = tag
        """a field lists filter on without decoding (an event's ``type``)"""
        self.visible_at = 0.0
        """monotonic time before which lists do not show it (simulated eventual consistency)"""
        self._packed = pack(obj)

    @property
    def obj(self) -> dict[str, Any]:
        """A fresh decoded copy of the object (mutating it changes nothing stored)."""
        return unpack(self._packed)

    @obj.setter
    def obj(self, value: dict[str, Any]) -> None:
        self._packed = pack(value)

    @property
    def raw(self) -> bytes:
        """The object's JSON."""
        return unpack_json(self._packed)

    @property
    def size(self) -> int:
        """Bytes the object takes packed."""
        return len(self._packed)

    def __repr__(self) -> str:
        return f"Entry({self.type!r}, {self.id!r}, {self.key!r}, deleted={self.deleted})"


@dataclass(slots=True)
class Index:
    """Entries of one type (or of one parent's children), ascending by key."""

    keys: list[Key] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    _key_of: dict[str, Key] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, entry: Entry) -> None:
        self._key_of[entry.id] = entry.key
        if not self.keys or entry.key > self.keys[-1]:
            self.keys.append(entry.key)
            self.entries.append(entry)
            return
        pos = bisect.bisect_left(self.keys, entry.key)
        self.keys.insert(pos, entry.key)
        self.entries.insert(pos, entry)

    def discard(self, oid: str) -> None:
        """Drop an object from the order; its key stays known for cursors."""
        key = self._key_of.get(oid)
        if key is None:
            return
        pos = bisect.bisect_left(self.keys, key)
        if pos < len(self.keys) and self.keys[pos] == key:
            del self.keys[pos]
            del self.entries[pos]

    def forget(self, oid: str) -> None:
        """Drop an object entirely (expired events)."""
        self.discard(oid)
        self._key_of.pop(oid, None)

    def key_of(self, oid: str) -> Key | None:
        return self._key_of.get(oid)

    def bounds(self, lo_created: int | None, hi_created: int | None) -> tuple[int, int]:
        """The slice ``[start, stop)`` of entries whose ``created`` is within the bounds."""
        start = 0 if lo_created is None else bisect.bisect_left(self.keys, (lo_created, -1))
        stop = (
            len(self.keys)
            if hi_created is None
            else bisect.bisect_left(self.keys, (hi_created + 1, -1))
        )
        return start, max(start, stop)

    def position(self, key: Key) -> int:
        """Where ``key`` is or would be in the order."""
        return bisect.bisect_left(self.keys, key)

    def newest_first(self) -> Iterator[Entry]:
        return reversed(self.entries)

    def expire_before(self, created: int) -> list[Entry]:
        """Remove and return every entry created before ``created``."""
        stop = bisect.bisect_left(self.keys, (created, -1))
        gone = self.entries[:stop]
        del self.keys[:stop]
        del self.entries[:stop]
        for entry in gone:
            self._key_of.pop(entry.id, None)
        return gone
