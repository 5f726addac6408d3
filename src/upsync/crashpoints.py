"""Named crash points, for proving that a crash at any step loses nothing (invariant 8).

Set ``UPSYNC_CRASH_AT=<name>`` (or ``<name>@<n>`` for the n-th time the point is reached) and
the process dies there at once, like ``kill -9``: no cleanup, no flush, no rollback message.
Unset (the normal case), a crash point costs one dictionary lookup.

Points (see :data:`POINTS`) sit between the steps whose order the guarantees depend on: after
reading upstream and before writing; inside a write's transaction before it commits; after a
consumer's batch is applied but before it is acked; and after the commit.
"""

from __future__ import annotations

import os
import sys

__all__ = ["POINTS", "crash_point"]

#: Every crash point, and where it is.
POINTS = {
    "source.page_fetched": "a backfill page was read from the API, nothing written yet",
    "source.events_fetched": "new events were read, none applied yet",
    "source.mid_event_batch": "some of an event batch's collections are written, others not",
    "port.before_commit": "snapshots written inside the transaction, cursor not yet, no commit",
    "port.after_commit": "snapshots and cursor committed, the caller not told yet",
    "consumer.claimed": "a batch was claimed (delivered), nothing applied",
    "consumer.before_commit": "the batch is applied and acked inside the transaction, no commit",
    "consumer.after_commit": "rows and ack committed, refused rows not nacked yet",
}

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here if ``UPSYNC_CRASH_AT`` names this point (and its hit count is reached)."""
    wanted = os.environ.get("UPSYNC_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(nth) if nth else 1):
        sys.stderr.write(f"upsync: crash point {name} reached (UPSYNC_CRASH_AT)\n")
        sys.stderr.flush()
        os._exit(137)  # like kill -9: no finally blocks, no atexit, no rollback
