"""What an apply did: :class:`ApplyResult`, and the tally the apply steps keep."""

from __future__ import annotations

from dataclasses import dataclass, field

from upsync.errors import UpsyncError

__all__ = ["ApplyResult", "Counts"]


@dataclass(frozen=True)
class ApplyResult:
    """What one :meth:`TableSink.apply` did.

    Every distinct record (by table and key) in the batch is counted exactly once in
    ``inserted``, ``updated``, ``stale``, ``deleted`` or ``rejected``; ``duplicates`` counts the
    extra in-batch versions dropped before writing, ``unrouted`` the records with no route
    (``unrouted="ignore"``).
    """

    inserted: int = 0
    """New rows written (live versions; a first-seen tombstone counts as ``deleted``)."""
    updated: int = 0
    """Existing rows moved to a newer live version."""
    stale: int = 0
    """Versions not applied because the table already held that version or a newer one."""
    deleted: int = 0
    """Tombstones that took effect (soft: row written with ``deleted=true``; hard: removed)."""
    duplicates: int = 0
    """Versions dropped in the batch because the same record had a higher one."""
    unrouted: int = 0
    """Records whose collection has no route (ignored)."""
    rejected: list[UpsyncError] = field(default_factory=list)
    """``MappingError`` / ``RowRejected`` for each record that was left out, with its reason."""

    @property
    def applied(self) -> int:
        """Rows that changed: inserted + updated + deleted."""
        return self.inserted + self.updated + self.deleted

    def __add__(self, other: ApplyResult) -> ApplyResult:
        return ApplyResult(
            inserted=self.inserted + other.inserted,
            updated=self.updated + other.updated,
            stale=self.stale + other.stale,
            deleted=self.deleted + other.deleted,
            duplicates=self.duplicates + other.duplicates,
            unrouted=self.unrouted + other.unrouted,
            rejected=[*self.rejected, *other.rejected],
        )


@dataclass
class Counts:
    """The running tally of one apply."""

    inserted: int = 0
    updated: int = 0
    stale: int = 0
    deleted: int = 0
    rejected: list[UpsyncError] = field(default_factory=list)

    def add(self, inserted: int = 0, updated: int = 0, stale: int = 0, deleted: int = 0) -> None:
        self.inserted += inserted
        self.updated += updated
        self.stale += stale
        self.deleted += deleted

    def snapshot(self) -> tuple[int, int, int, int]:
        return (self.inserted, self.updated, self.stale, self.deleted)

    def restore(self, saved: tuple[int, int, int, int]) -> None:
        self.inserted, self.updated, self.stale, self.deleted = saved

    def result(self, *, duplicates: int, unrouted: int) -> ApplyResult:
        return ApplyResult(
            inserted=self.inserted,
            updated=self.updated,
            stale=self.stale,
            deleted=self.deleted,
            duplicates=duplicates,
            unrouted=unrouted,
            rejected=self.rejected,
        )
