"""Benchmark of the pure matching engine (run: ``.venv/bin/python bench/engine_bench.py``).

1. Mixed stream, seeded: 60% limit orders around a drifting mid (about a fifth of them
   crossing), 25% cancels of live orders, 10% market orders, 5% IOC; about 100 price levels
   and ~800 live orders at steady state. The stream is generated first (a generation pass
   tracks which orders are live so cancels hit live ones), then fed through the typed API,
   every event emitted and kept until the command returns. Reports commands/s,
   p50/p99/p99.9 latency per command (``time.perf_counter_ns`` around each ``submit``), and
   peak traced memory of the run (``tracemalloc``, in a separate pass so tracing does not
   distort the timings).
2. (Run first.) 1,000,000 resting orders: memory used (resident set size growth, from
   ``resource.getrusage().ru_maxrss``) and the time to cancel them all one by one.
3. Baseline: the simple reference model (``tests/support/reference_engine.py``) fed the
   first commands of the same stream as dicts.

Options: ``--commands N`` (mixed stream length), ``--resting N``, ``--reference N``,
``--profile`` (cProfile the mixed stream and print the top functions), and for instruction
counts under valgrind ``--save-stream FILE`` (write the stream, pickled, and stop) with
``--phase load|mixed|batch --stream FILE`` (read it and run only that phase; see README.md).
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.engine import (  # noqa: E402
    Cancel,
    Cancelled,
    Command,
    Fill,
    Lots,
    MarketSpec,
    MatchingEngine,
    Millis,
    NewOrder,
    OrderId,
    OrderKind,
    Owner,
    Side,
    Ticks,
    TimeInForce,
)
from actors.engine.codec import command_to_dict  # noqa: E402
from actors.engine.engine import GC_THRESHOLDS  # noqa: E402

SEED = 20_240_601
MID_START = 10_000  # ticks
HALF_BAND = 50  # resting limits within mid +- 50 ticks: ~100 levels
TARGET_LIVE = 800
OWNERS = [Owner(f"u{i}") for i in range(50)]


def generate_stream(n: int, seed: int = SEED) -> list[Command]:
    """Return a seeded mixed command stream whose cancels target live orders."""
    rng = random.Random(seed)
    engine = MatchingEngine(MarketSpec("BENCH"))
    live: list[OrderId] = []
    pos: dict[OrderId, int] = {}
    mid = MID_START
    commands: list[Command] = []
    for i in range(n):
        mid += rng.choice((-1, 0, 0, 1))
        r = rng.random()
        ts = Millis(i)
        owner = rng.choice(OWNERS)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1 if side is Side.BUY else -1
        oid = OrderId(f"o{i}")
        cmd: Command
        if r < 0.60:
            if rng.random() < 0.2:
                price = mid + sign * rng.randint(0, 3)
            else:
                price = mid - sign * rng.randint(1, HALF_BAND)
            cmd = NewOrder(
                oid, owner, side, OrderKind.LIMIT, ts, Lots(rng.randint(1, 10)), Ticks(price)
            )
        elif r < 0.85 and live:
            victim = live[rng.randrange(len(live))]
            cmd = Cancel(victim, engine.get_order(victim).owner, ts)  # type: ignore[union-attr]
        elif r < 0.95:
            qty = Lots(rng.randint(1, 12) if len(live) < TARGET_LIVE else rng.randint(10, 40))
            cmd = NewOrder(oid, owner, side, OrderKind.MARKET, ts, qty)
        else:
            price = mid + sign * rng.randint(0, 3)
            cmd = NewOrder(
                oid,
                owner,
                side,
                OrderKind.LIMIT,
                ts,
                Lots(rng.randint(1, 10)),
                Ticks(price),
                tif=TimeInForce.IOC,
            )
        commands.append(cmd)
        _track(engine.submit(cmd), cmd, engine, live, pos)
    return commands


def _track(
    events: list[Any],
    cmd: Command,
    engine: MatchingEngine,
    live: list[OrderId],
    pos: dict[OrderId, int],
) -> None:
    """Keep ``live`` (with O(1) swap-remove via ``pos``) equal to the engine's live ids."""
    dead = [e.maker_id for e in events if type(e) is Fill]
    dead += [e.id for e in events if type(e) is Cancelled]
    for oid in dead:
        if oid in pos and engine.get_order(oid) is None:
            j = pos.pop(oid)
            last = live.pop()
            if last != oid:
                live[j] = last
                pos[last] = j
    if isinstance(cmd, NewOrder) and cmd.id not in pos and engine.get_order(cmd.id) is not None:
        pos[cmd.id] = len(live)
        live.append(cmd.id)


def run_mixed(commands: list[Command]) -> tuple[float, list[int], int, MatchingEngine]:
    """Feed the stream; return (commands/s, per-command latencies ns, events, engine)."""
    engine = MatchingEngine(MarketSpec("BENCH"))
    submit = engine.submit
    clock = time.perf_counter_ns
    latencies = [0] * len(commands)
    n_events = 0
    gc.collect()
    start = clock()
    for i, cmd in enumerate(commands):
        t0 = clock()
        events = submit(cmd)
        latencies[i] = clock() - t0
        n_events += len(events)
    elapsed = (clock() - start) / 1e9
    return len(commands) / elapsed, latencies, n_events, engine


def run_batch(commands: list[Command]) -> float:
    """Feed the stream with one ``submit_batch`` call; return commands/s."""
    engine = MatchingEngine(MarketSpec("BENCH"))
    gc.collect()
    start = time.perf_counter()
    engine.submit_batch(commands)
    return len(commands) / (time.perf_counter() - start)


def traced_peak(commands: list[Command]) -> int:
    """Return the peak traced memory (bytes) of feeding the stream to a fresh engine."""
    tracemalloc.start()
    engine = MatchingEngine(MarketSpec("BENCH"))
    for cmd in commands:
        engine.submit(cmd)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def pct(sorted_ns: list[int], p: float) -> float:
    """Return the p-th percentile of sorted nanosecond samples, in microseconds."""
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * p))] / 1000


def rss_kib() -> int:
    """Return the process's peak resident set size (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_resting(n: int) -> None:
    """Rest ``n`` orders, print the memory used and the time to cancel them all."""
    gc.collect()
    before = rss_kib()
    engine = MatchingEngine(MarketSpec("BENCH"))
    submit = engine.submit
    limit = OrderKind.LIMIT
    start = time.perf_counter()
    for i in range(n):
        side = Side.BUY if i & 1 else Side.SELL
        offset = 1 + (i >> 1) % 1000
        price = Ticks(MID_START - offset if side is Side.BUY else MID_START + offset)
        submit(NewOrder(OrderId(f"r{i}"), OWNERS[i % 50], side, limit, Millis(i), Lots(5), price))
    rest_s = time.perf_counter() - start
    gc.collect()
    used_mib = (rss_kib() - before) / 1024
    print(f"resting: {n:,} orders placed in {rest_s:.2f} s ({n / rest_s:,.0f}/s)")
    print(f"resting: memory used {used_mib:,.0f} MiB (ru_maxrss growth; incl. allocator slack)")
    cancels = [Cancel(OrderId(f"r{i}"), OWNERS[i % 50], Millis(n)) for i in range(n)]
    start = time.perf_counter()
    for cmd in cancels:
        submit(cmd)
    cancel_s = time.perf_counter() - start
    assert engine.best_bid() is None and engine.best_ask() is None
    print(f"resting: cancelled all {n:,} in {cancel_s:.2f} s ({n / cancel_s:,.0f}/s)")


def run_reference(commands: list[Command]) -> None:
    """Feed the reference model the same commands as dicts and print its throughput."""
    try:
        from tests.support.reference_engine import ReferenceEngine
    except ImportError as exc:
        print(f"reference: skipped ({exc})")
        return
    dicts = [command_to_dict(c) for c in commands]
    ref = ReferenceEngine({"symbol": "BENCH"})
    start = time.perf_counter()
    for d in dicts:
        ref.apply(d)
    elapsed = time.perf_counter() - start
    print(f"reference: {len(dicts):,} commands, {len(dicts) / elapsed:,.0f} commands/s")


def run_phase(args: argparse.Namespace) -> None:
    """Save the stream, or run one phase on a saved stream (for instruction counts).

    Instructions per command = (I refs of ``--phase mixed`` or ``batch`` - I refs of
    ``--phase load``) / commands: the load phase reads the stream and builds an engine.
    """
    if args.save_stream:
        with Path(args.save_stream).open("wb") as f:
            pickle.dump(generate_stream(args.commands), f)
        return
    with Path(args.stream).open("rb") as f:
        commands: list[Command] = pickle.load(f)  # our own file, written by --save-stream
    if args.phase == "mixed":
        run_mixed(commands)
    elif args.phase == "batch":
        run_batch(commands)
    else:
        MatchingEngine(MarketSpec("BENCH"))


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=500_000)
    parser.add_argument("--resting", type=int, default=1_000_000)
    parser.add_argument("--reference", type=int, default=5_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--gc",
        choices=("default", "actor"),
        default="default",
        help="garbage-collector thresholds: CPython's, or the market actor's (GC_THRESHOLDS); "
        "applied at start, since a change mid-process measures the old heap",
    )
    parser.add_argument("--save-stream", metavar="FILE")
    parser.add_argument("--phase", choices=("load", "mixed", "batch"))
    parser.add_argument("--stream", metavar="FILE")
    args = parser.parse_args()
    if args.gc == "actor":
        gc.set_threshold(*GC_THRESHOLDS)
    if args.save_stream or args.phase:
        run_phase(args)
        return

    print(f"python {sys.version.split()[0]}, gc thresholds {gc.get_threshold()}")
    # The resting run goes first, so that its ru_maxrss growth is not hidden by an earlier peak.
    run_resting(args.resting)
    print(f"generating {args.commands:,} mixed commands...")
    commands = generate_stream(args.commands)
    if args.profile:
        import cProfile
        import pstats

        engine = MatchingEngine(MarketSpec("BENCH"))
        cProfile.runctx("for c in commands: engine.submit(c)", globals(), locals(), "/tmp/eb")
        pstats.Stats("/tmp/eb").sort_stats("tottime").print_stats(15)
        return
    rate, latencies, n_events, engine = run_mixed(commands)
    latencies.sort()
    l2 = engine.l2()
    print(
        f"mixed: {args.commands:,} commands, {n_events:,} events; end state "
        f"{len(engine.l3()):,} live orders, {len(l2.bids) + len(l2.asks)} levels"
    )
    print(f"mixed: {rate:,.0f} commands/s (submit per command, timer included)")
    print(f"mixed: {run_batch(commands):,.0f} commands/s (one submit_batch call)")
    print(
        f"mixed: latency p50 {pct(latencies, 0.5):.1f} us, p99 {pct(latencies, 0.99):.1f} us, "
        f"p99.9 {pct(latencies, 0.999):.1f} us, mean {statistics.fmean(latencies) / 1000:.1f} us"
    )
    peak = traced_peak(commands[: min(len(commands), 200_000)])
    print(f"mixed: peak traced memory {peak / 2**20:.1f} MiB (tracemalloc, first 200k commands)")
    run_reference(commands[: args.reference])


if __name__ == "__main__":
    main()
