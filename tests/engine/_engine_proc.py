"""Run the engine as its own process (for crash tests): python -m tests.engine._engine_proc.

Arguments: DSN SCHEMA STRIPE_BASE_URL. Stops cleanly on SIGTERM; dies wherever
``UPSYNC_CRASH_AT`` says (see upsync.crashpoints).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from upsync.engine.server import Engine, EngineConfig


async def main(dsn: str, schema: str, base_url: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    config = EngineConfig(
        dsn,
        schema=schema,
        stripe_base_url=base_url,
        poll_interval=0.05,
        refresh_every=0.1,
        serve_api=False,
    )
    await Engine(config).run(stop)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
