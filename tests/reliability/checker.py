"""Compares what Stripe holds, what the stream holds and what the user tables hold.

Used after a fault suite has let the engine catch up: every kind of damage the guarantees rule
out has its own count, so a figures line can say ``lost=0 stale=0 resurrected=0 unexpected=0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg import sql

from upsync.testing.stripe import Store

#: the collections the fault suites sync, and their typed tables
TABLES = {"customer": "customers", "subscription": "subscriptions"}


@dataclass
class Damage:
    """What differs between Stripe and the user tables (all zero when the guarantees hold)."""

    objects: int = 0
    lost: int = 0
    """live in Stripe, missing (or marked deleted) in the table"""
    stale: int = 0
    """in the table with data other than Stripe's"""
    resurrected: int = 0
    """deleted in Stripe (a tombstone in the stream), live in the table"""
    unexpected: int = 0
    """in the table, never seen in Stripe or the stream"""
    versions: int = 0
    """record versions the stream produced (its highest updated_idx count, a measure of load)"""

    @property
    def clean(self) -> bool:
        return not (self.lost or self.stale or self.resurrected or self.unexpected)

    def line(self) -> str:
        return (
            f"objects={self.objects} versions={self.versions} lost={self.lost} "
            f"stale={self.stale} resurrected={self.resurrected} unexpected={self.unexpected}"
        )


def _normal(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj, default=str))


def check(dsn: str, stream_schema: str, tables_schema: str, store: Store) -> Damage:
    """Count the damage; the tables are read as they are now."""
    damage = Damage()
    with psycopg.connect(dsn) as conn:
        tombstones = {
            r[0]
            for r in conn.execute(
                sql.SQL("SELECT upstream_id FROM {} WHERE deleted").format(
                    sql.Identifier(stream_schema, "records")
                )
            )
        }
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(stream_schema, "events"))
        ).fetchone()
        damage.versions = int(row[0]) if row else 0
        for name, table in TABLES.items():
            upstream = {o["id"]: _normal(o) for o in store.live(name)}
            damage.objects += len(upstream)
            rows = {
                r[0]: (r[1], r[2])
                for r in conn.execute(
                    sql.SQL("SELECT upstream_id, deleted, data FROM {}").format(
                        sql.Identifier(tables_schema, table)
                    )
                )
            }
            for oid, obj in upstream.items():
                if oid not in rows or rows[oid][0]:
                    damage.lost += 1
                elif rows[oid][1] != obj:
                    damage.stale += 1
            for oid, (deleted, _data) in rows.items():
                if oid in upstream:
                    continue
                if oid in tombstones and not deleted:
                    damage.resurrected += 1
                elif oid not in tombstones:
                    damage.unexpected += 1
    return damage
