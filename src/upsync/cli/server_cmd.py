"""``upsync server``: the HTTP API, every active sync and every managed consumer, until
SIGINT/SIGTERM; then it stops taking work, finishes what is in flight and exits 0."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import replace

import click

from upsync.cli.app import Context, main, pass_ctx
from upsync.cli.database import describe_database, run_async
from upsync.config import Settings
from upsync.engine.server import Engine, EngineConfig
from upsync.errors import ConfigurationError

_log = logging.getLogger("upsync.server")


@main.command()
@click.option("--host", help="Address to listen on (UPSYNC_HOST) [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (UPSYNC_PORT) [default: 8765].")
@click.option(
    "--stripe-base-url",
    metavar="URL",
    help="Where syncs reach Stripe (UPSYNC_STRIPE_BASE_URL), e.g. a local stand-in "
    "[default: https://api.stripe.com].",
)
@pass_ctx
def server(ctx: Context, host: str | None, port: int | None, stripe_base_url: str | None) -> None:
    """Run the API and the engine (syncs, managed table consumers) until Ctrl-C or SIGTERM."""
    settings = replace(
        ctx.settings,
        host=host or ctx.settings.host,
        port=port or ctx.settings.port,
    )
    _check_port_free(settings)

    async def work(dsn: str) -> None:
        config = EngineConfig(
            dsn,
            schema=settings.schema,
            host=settings.host,
            port=settings.port,
            stripe_base_url=stripe_base_url or settings.stripe_base_url,
        )
        await serve(Engine(config), settings)

    run_async(settings, work)


async def serve(engine: Engine, settings: Settings) -> None:
    """Run ``engine`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(engine.run(stop))
    ready = asyncio.create_task(engine.ready.wait())
    await asyncio.wait([running, ready], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        _announce(settings)
    else:
        ready.cancel()
    await running  # raises what stopped the engine, if it failed
    _log.info("upsync server stopped")


def _announce(settings: Settings) -> None:
    url = f"http://{settings.host}:{settings.port}"
    _log.info(
        "upsync server listening on %s (database: %s, schema %s)",
        url,
        describe_database(settings),
        settings.schema,
    )
    click.echo(f"upsync API on {url}  (health: {url}/healthz, metrics: {url}/metrics)")
    click.echo("Requests need a bearer token: create one with `upsync token create NAME`.")
    click.echo("Ctrl-C or SIGTERM stops the server.")


def _check_port_free(settings: Settings) -> None:
    """Fail with one clear line, rather than uvicorn's exit, when the port is taken."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as e:
            raise ConfigurationError(
                f"cannot listen on {settings.host}:{settings.port} ({e.strerror}): another "
                "program uses that port, or the address is not on this machine; pass --port "
                "(or set UPSYNC_PORT) or --host"
            ) from None
