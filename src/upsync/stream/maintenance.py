"""Planner statistics for the stream's hot tables, kept fresh while they grow fast.

Cursor reads and claims depend on Postgres knowing that ``records`` holds one stream and how far
``updated_idx`` goes. Autovacuum analyses a table after a tenth of it changed, but only once a
minute and never inside a first large backfill; until then the planner guesses, and a capped
"how much is left" count can turn into a scan of the whole stream. :func:`refresh_statistics`
runs ``ANALYZE`` on a table that was never analysed or has changed by more than its size since
(so, as a stream grows, about once per doubling). The engine calls it every few seconds; it costs
one catalog query when nothing is stale.
"""

from __future__ import annotations

from upsync.stream.tables import DEFAULT_SCHEMA, AConn, q

_ANALYZE = {
    "records": "ANALYZE {records}",
    "consumer_messages": "ANALYZE {consumer_messages}",
    "events": "ANALYZE {events}",
}

_STALE = """
SELECT relname FROM pg_stat_user_tables
WHERE schemaname = %(schema)s AND relname = ANY(%(tables)s)
    AND (coalesce(last_analyze, last_autoanalyze) IS NULL AND n_mod_since_analyze > 0
         OR n_mod_since_analyze > greatest(%(floor)s, n_live_tup))
ORDER BY relname
"""


async def refresh_statistics(
    conn: AConn, *, schema: str = DEFAULT_SCHEMA, floor: int = 1000
) -> list[str]:
    """``ANALYZE`` the stream tables whose statistics are missing or outgrown; returns their
    names. Tables that changed by fewer than ``floor`` rows are left to autovacuum."""
    cur = await conn.execute(_STALE, {"schema": schema, "tables": list(_ANALYZE), "floor": floor})
    stale = [name for (name,) in await cur.fetchall()]
    for name in stale:
        await conn.execute(q(schema, _ANALYZE[name]))
    return stale
