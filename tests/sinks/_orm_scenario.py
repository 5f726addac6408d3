"""The scenario every ORM/driver integration runs: Sequin's upsert guide, with the hard parts.

Three batches into ``subscriptions`` (the guide's table: standard columns plus
``stripe_customer_id varchar(32)``, ``plan_id``, ``quantity``, ``internal_id``):

1. sub A at versions 10, 12 and 11 (in-batch duplicates), B at 20, C at 30, and BAD whose
   customer id is too long for ``varchar(32)`` (Postgres refuses that row only);
2. a replay: A at 11 (dropped in the batch for A at 13, newer), C at 29 (stale), B deleted
   at 25;
3. B at 21: a late, older live version, which must not bring B back.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from upsync.errors import RowRejected
from upsync.records import Record, SyncRef, record_id
from upsync.sinks import ApplyResult

if TYPE_CHECKING:
    from sqlalchemy import URL

COLLECTION = "stripe:subscription"
SYNC = SyncRef(id="sync_1", external_id="acct_42", metadata={"tenant": "acme"})

#: the guide's mapping (sequin-contract §1.6), as upsync sources
GUIDE_COLUMNS: dict[str, str] = {
    "stripe_customer_id": "data.customer",
    "plan_id": "data.items.data[0].price.id",
    "quantity": "data.quantity",
    "internal_id": "sync.external_id",
}


def rid(name: str) -> str:
    """The record id of subscription ``sub_<name>``."""
    return record_id(SYNC.id or "", COLLECTION, f"sub_{name}")


def subscription(
    name: str, version: int, *, customer: str | None = None, deleted: bool = False
) -> Record:
    """Version ``version`` of Stripe subscription ``sub_<name>``; the data varies by version."""
    return Record(
        id=rid(name),
        upstream_id=f"sub_{name}",
        collection_id=COLLECTION,
        updated_idx=version,
        data={
            "id": f"sub_{name}",
            "object": "subscription",
            "customer": customer or f"cus_{name}",
            "items": {"data": [{"price": {"id": f"price_{version}"}}]},
            "quantity": version,
        },
        deleted=deleted,
        sync=SYNC,
        upstream_created_at=datetime(2024, 1, 1, tzinfo=UTC),
        upstream_updated_at=datetime(2024, 1, 1, 0, 0, version % 60, tzinfo=UTC),
    )


BATCHES: list[list[Record]] = [
    [
        subscription("A", 10),
        subscription("A", 12),
        subscription("A", 11),
        subscription("B", 20),
        subscription("C", 30),
        subscription("BAD", 40, customer="cus_" + "x" * 40),
    ],
    [
        subscription("A", 11),
        subscription("C", 29),
        subscription("A", 13),
        subscription("B", 25, deleted=True),
    ],
    [subscription("B", 21)],
]


@dataclass(frozen=True)
class Counts:
    inserted: int = 0
    updated: int = 0
    stale: int = 0
    deleted: int = 0
    duplicates: int = 0
    rejected: tuple[str, ...] = ()


EXPECTED_COUNTS = [
    Counts(inserted=3, duplicates=2, rejected=(rid("BAD"),)),
    Counts(updated=1, stale=1, deleted=1, duplicates=1),
    Counts(stale=1),
]

Row = tuple[Any, ...]
"""(id, updated_idx, deleted, stripe_customer_id, plan_id, quantity, internal_id)"""


def expected_rows(*, hard_delete: bool = False) -> dict[str, Row]:
    """The table after the three batches, by id."""
    rows = {
        rid("A"): (rid("A"), 13, False, "cus_A", "price_13", 13, "acct_42"),
        rid("B"): (rid("B"), 25, True, "cus_B", "price_25", 25, "acct_42"),
        rid("C"): (rid("C"), 30, False, "cus_C", "price_30", 30, "acct_42"),
    }
    if hard_delete:
        del rows[rid("B")]
    return rows


def counts(result: ApplyResult) -> Counts:
    """The comparable part of a result; checks that each rejection is a ``RowRejected``."""
    for error in result.rejected:
        assert isinstance(error, RowRejected), error
        assert "too long" in error.reason, error.reason
        assert error.table.endswith("subscriptions")
    return counts_any(result)


def counts_any(result: ApplyResult) -> Counts:
    """The comparable part of a result, rejected record ids sorted."""
    return Counts(
        inserted=result.inserted,
        updated=result.updated,
        stale=result.stale,
        deleted=result.deleted,
        duplicates=result.duplicates,
        rejected=tuple(sorted(getattr(e, "record_id", "") for e in result.rejected)),
    )


def check(
    results: Sequence[ApplyResult], rows: Sequence[Row], *, hard_delete: bool = False
) -> None:
    """Assert the scenario's counts and final table."""
    # (this module is not assertion-rewritten: say what differed)
    got_counts = [counts(r) for r in results]
    assert got_counts == EXPECTED_COUNTS, f"counts {got_counts} != {EXPECTED_COUNTS}"
    got_rows = {row[0]: tuple(row) for row in rows}
    want = expected_rows(hard_delete=hard_delete)
    assert got_rows == want, f"rows {got_rows} != {want}"


def sqlalchemy_url(schema_dsn: str, driver: str) -> tuple[URL, dict[str, Any]]:
    """A SQLAlchemy URL and ``connect_args`` for ``driver`` reaching the test's schema."""
    from psycopg.conninfo import conninfo_to_dict
    from sqlalchemy import URL

    params = conninfo_to_dict(schema_dsn)
    options = str(params.pop("options", ""))
    if driver != "asyncpg":  # libpq-based drivers take the DSN's keywords as they are
        return URL.create(f"postgresql+{driver}"), {**params, "options": options}
    port = params.get("port")
    url = URL.create(
        "postgresql+asyncpg",
        username=str(params.get("user", "")) or None,
        password=str(params.get("password", "")) or None,
        host=str(params.get("host", "")) or None,
        port=int(port) if port else None,
        database=str(params.get("dbname", "")) or None,
    )
    return url, {"server_settings": {"search_path": options.partition("search_path=")[2]}}


def random_batches(rng: random.Random, *, keys: int = 5, versions: int = 40) -> list[list[Record]]:
    """Versions of a few subscriptions, some deletes and bad ones, duplicated, shuffled, split.

    Versions are unique and increasing per stream (like ``updated_idx``); a record is "bad"
    (its customer id too long for ``varchar(32)``) with probability 0.1.
    """
    records = []
    for version in range(1, versions + 1):
        name = f"K{rng.randrange(keys)}"
        bad = rng.random() < 0.1
        records.append(
            subscription(
                name,
                version,
                deleted=rng.random() < 0.2,
                customer="cus_" + "x" * 40 if bad else None,
            )
        )
    records += rng.choices(records, k=versions // 4)  # at-least-once: redeliveries
    rng.shuffle(records)
    cuts = sorted(rng.sample(range(1, len(records)), k=4))
    return [records[a:b] for a, b in zip([0, *cuts], [*cuts, len(records)], strict=True)]


def is_bad(record: Record) -> bool:
    return len(str(record.data.get("customer"))) > 32


def model_apply(
    table: dict[str, Record], batch: Sequence[Record], *, hard_delete: bool = False
) -> tuple[Counts, frozenset[str]]:
    """What the sink must do with ``batch``, on a model ``table`` (id → applied record).

    Also returns the ids of bad versions that are stale: the sink may count them stale (it
    skipped them) or rejected (Postgres refused the value before seeing the conflict).
    """
    newest: dict[str, Record] = {}
    for r in batch:
        if r.id not in newest or r.updated_idx > newest[r.id].updated_idx:
            newest[r.id] = r
    inserted = updated = stale = deleted = 0
    rejected = []
    either = set()
    for key in sorted(newest):
        r = newest[key]
        bad = is_bad(r) and not (hard_delete and r.deleted)  # a hard delete writes no values
        if key in table and table[key].updated_idx >= r.updated_idx:
            stale += 1
            if bad:
                either.add(key)
        elif bad:
            rejected.append(key)
        else:
            if r.deleted:
                deleted += 1
            elif key in table and not (hard_delete and table[key].deleted):
                updated += 1  # (a hard-deleted row is gone: its next version is an insert)
            else:
                inserted += 1
            table[key] = r
    counts = Counts(inserted, updated, stale, deleted, len(batch) - len(newest), tuple(rejected))
    return counts, frozenset(either)


def stale_if_either(got: Counts, either: frozenset[str]) -> Counts:
    """``got`` with rejections of stale bad versions counted as stale instead."""
    moved = [k for k in got.rejected if k in either]
    return dataclasses.replace(
        got,
        stale=got.stale + len(moved),
        rejected=tuple(k for k in got.rejected if k not in either),
    )


def model_rows(table: dict[str, Record], *, hard_delete: bool) -> dict[str, tuple[Any, ...]]:
    """The final ``(id, updated_idx, deleted)`` per row of the model table."""
    return {
        key: (key, r.updated_idx, r.deleted)
        for key, r in table.items()
        if not (hard_delete and r.deleted)
    }
