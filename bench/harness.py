"""What the benchmarks share: the Postgres they run on, their rounds, medians and output.

A benchmark adds the common options (:func:`add_options`: ``--rounds``, ``--dsn``), opens its
Postgres with :func:`postgres`, runs its rounds, each measured against a baseline taken in the
same round, and gives each round's ratios to a :class:`Rounds`, which prints them as they come
and, last, one machine-readable line of their medians. A noisy neighbour then skews one round,
not the published figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

__all__ = ["Rounds", "Stopwatch", "add_options", "fmt", "postgres", "run_bench", "server_info"]


def add_options(parser: argparse.ArgumentParser, *, rounds: int = 3) -> None:
    """``--rounds`` and ``--dsn`` (default ``$UPSYNC_BENCH_DSN``, else an embedded Postgres)."""
    parser.add_argument("--rounds", type=int, default=rounds, help="rounds (median reported)")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("UPSYNC_BENCH_DSN"),
        help="a Postgres URL; default $UPSYNC_BENCH_DSN, else a fresh embedded Postgres",
    )


def run_bench(
    parser: argparse.ArgumentParser, run: Callable[[str, argparse.Namespace], None]
) -> None:
    """Add the common options to ``parser``, parse them, and ``run(dsn, args)`` on the Postgres."""
    add_options(parser)
    args = parser.parse_args()
    with postgres(args.dsn) as dsn:
        run(dsn, args)


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[str]:
    """The DSN to benchmark: ``dsn`` itself, or a fresh embedded Postgres while the block runs.

    The embedded server gets its own data directory (the defaults a new user meets, no other
    process's tables), stopped and removed at the end.
    """
    if dsn:
        yield dsn
        return
    from upsync.embedded import start_embedded

    home = Path(tempfile.mkdtemp(prefix="upsync-bench-"))
    server = start_embedded(home / "pgdata")
    try:
        yield server.dsn
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def server_info(conn: psycopg.Connection[object] | psycopg.AsyncConnection[object]) -> str:
    """``server=<version>@<host or socket>``, for the header line of a run."""
    version = conn.info.server_version
    major, minor = version // 10000, version % 10000
    host = conn.info.host
    where = "embedded" if host.startswith("/") else f"{host}:{conn.info.port}"
    return f"server={major}.{minor}@{where}"


def fmt(value: float) -> str:
    """A ratio for the output: two decimals below 10, one above."""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


@dataclass
class Stopwatch:
    """Wall and client CPU seconds per label, summed over every :meth:`time` block."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def time(self, label: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[label] = self.wall.get(label, 0.0) + time.perf_counter() - wall
            self.cpu[label] = self.cpu.get(label, 0.0) + time.process_time() - cpu

    def rate(self, label: str, count: int) -> float:
        """``count`` per wall second of ``label``."""
        return count / self.wall[label]

    def line(self, label: str, count: int, unit: str = "rows") -> str:
        """``label  N rows/s  client CPU x us/row``: one phase of a round."""
        us = self.cpu[label] / count * 1e6
        return (
            f"  {label:<32}{self.rate(label, count):>10,.0f} {unit}/s   "
            f"client CPU {us:6.1f} us/{unit[:-1]}"
        )


@dataclass
class Rounds:
    """Each round's ratios; their medians make the result."""

    ratios: dict[str, list[float]] = field(default_factory=dict)

    def add(self, figures: Mapping[str, float]) -> None:
        """Record (and print) the ratios of the round that just ended."""
        for name, value in figures.items():
            self.ratios.setdefault(name, []).append(value)
        number = len(next(iter(self.ratios.values())))
        print(f"round {number}: " + " ".join(f"{k}={fmt(v)}" for k, v in figures.items()))

    def medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.ratios.items()}

    def report(self, extra: Mapping[str, object] | None = None) -> None:
        """Print the spread of each ratio, then last the machine-readable line of medians."""
        spread = " ".join(
            f"{k}={fmt(min(v))}..{fmt(max(v))}" for k, v in self.ratios.items() if len(v) > 1
        )
        if spread:
            print(f"range over {len(next(iter(self.ratios.values())))} rounds: {spread}")
        medians = " ".join(f"{k}={fmt(v)}" for k, v in self.medians().items())
        rest = " ".join(f"{k}={v}" for k, v in (extra or {}).items())
        print(f"{medians} {rest}".rstrip())
