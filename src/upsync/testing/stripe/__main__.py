"""``python -m upsync.testing.stripe``: serve a seeded stand-in on 127.0.0.1."""

from __future__ import annotations

import argparse
import sys

from .app import StandinApp
from .faults import Faults
from .generator import LiveTraffic, generate
from .server import serve
from .store import Store


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m upsync.testing.stripe",
        description="A local Stripe stand-in (test mode) on 127.0.0.1.",
    )
    p.add_argument(
        "--port",
        type=int,
        default=12111,
        help="port on 127.0.0.1 (default 12111, like stripe-mock)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed for ids and generated data")
    p.add_argument(
        "--customers", type=int, default=0, help="generate this many customers' history first"
    )
    p.add_argument("--days", type=int, default=90, help="days of backdated history to generate")
    p.add_argument("--rate-limit", type=float, default=25.0, help="requests/s before 429s (0: off)")
    p.add_argument(
        "--live-rate", type=float, default=0.0, help="live-traffic changes per second (0: off)"
    )
    p.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of requests answered 500"
    )
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to each request")
    p.add_argument("--live-duration", type=float, default=3600.0, help="seconds of live traffic")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    store = Store(seed=args.seed)
    if args.customers:
        counts = generate(store, customers=args.customers, seed=args.seed, days=args.days)
        print(f"generated {sum(counts.values())} objects", file=sys.stderr)
    faults = Faults(
        rate_limit=args.rate_limit or None,
        error_rate=args.error_rate,
        latency=args.latency,
        seed=args.seed,
    )
    app = StandinApp(store, faults)
    live = (
        LiveTraffic(store, args.live_rate, args.live_duration, args.seed)
        if args.live_rate > 0
        else None
    )
    if live is not None:
        live.start()
    print(f"Stripe stand-in on http://127.0.0.1:{args.port} (any sk_test_… key)", file=sys.stderr)
    try:
        serve(app, args.port)
    finally:
        if live is not None:
            live.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
