"""The printed figures of the fan-out bench (`bench/ws_bench.py`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench.cpu import cpu_report

if TYPE_CHECKING:
    from bench.ws_bench import Measured

SETUP_OK = ("open", "subscribed")


def _us(seconds: float, count: int) -> str:
    return f"{1e6 * seconds / count:,.1f}" if count else "-"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def print_measured(m: Measured) -> None:
    """Print one measurement as soon as it is done."""
    total, fleet = m.fleet.total, m.fleet
    print(
        f"\n-- {m.server} {m.point} via {m.path}: {total.connections:,} of "
        f"{m.point.clients:,} connections open; load average {m.load}; machine "
        f"{100 * m.busy:.0f}% busy"
    )
    problems = {k: v for k, v in fleet.setup.items() if k not in SETUP_OK}
    if problems:
        print(f"   setup problems: {problems}")
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(fleet.kinds.items()))
    print(
        f"   delivered {total.count:,} data messages in {m.duration_s:.0f} s = {m.rate:,.0f}/s "
        f"({kinds}); latency p50 {_ms(total.percentile_ms(50))}, p99 "
        f"{_ms(total.percentile_ms(99))}, max {_ms(total.max_ms)} ms"
    )
    if m.server != "bare":
        print(
            "   latency by channel: "
            + "; ".join(
                f"{name} p50 {_ms(f.percentile_ms(50))}, p99 {_ms(f.percentile_ms(99))}, max "
                f"{_ms(f.max_ms)} ms"
                for name, f in sorted(fleet.channels.items())
                if f.count
            )
        )
    what = "server process" if m.server == "bare" else "WebSocket replica(s)"
    print(
        f"   CPU: {what} {100 * m.main_cpu_s / m.duration_s:.0f}% of a core, "
        f"{_us(m.main_cpu_s, total.count)} µs/msg; clients "
        f"{100 * fleet.cpu_s / m.duration_s:.0f}%, {_us(fleet.cpu_s, total.count)} µs/msg"
    )
    if m.flow is not None:
        flow = m.flow
        errors = ", ".join(f"{s}: {n}" for s, n in flow.errors.items()) or "none"
        print(
            f"   order flow: {flow.ok:,} accepted ({flow.ok / flow.wall_s:,.1f}/s), REST latency "
            f"p50 {flow.percentile_ms(50):,.1f}, p99 {flow.percentile_ms(99):,.1f} ms (from when "
            f"due), errors {errors}; whole server side per delivered message:"
        )
        print("\n".join(cpu_report(m.server_cpu, m.duration_s, max(total.count, 1), "msg")))
    for sample in fleet.samples[:5]:
        print(f"   e.g. {sample}")


def print_summary(results: Sequence[Measured]) -> None:
    """Print every measurement in one table, then the exchange's ratios to the bare server."""
    header = (
        f"{'point':>9} {'server':<14} {'path':<8} {'conns':>6} {'msgs/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'max ms':>7} {'srv µs':>7} {'side µs':>8} {'cli µs':>7} {'busy':>5} "
        f"load 1m"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for m in results:
        total = m.fleet.total
        side = _us(sum(m.server_cpu.values()), total.count) if m.flow is not None else "-"
        print(
            f"{m.point!s:>9} {m.server:<14} {m.path:<8} {total.connections:>6} {m.rate:>8,.0f} "
            f"{_ms(total.percentile_ms(50)):>7} {_ms(total.percentile_ms(99)):>7} "
            f"{_ms(total.max_ms):>7} {_us(m.main_cpu_s, total.count):>7} {side:>8} "
            f"{_us(m.fleet.cpu_s, total.count):>7} {100 * m.busy:>4.0f}% {m.load.split(',')[0]}"
        )
    print("srv µs: CPU per delivered message of the bare server / the WebSocket replicas;")
    print("side µs: of the whole server side (replicas, HAProxy, market, shards, PostgreSQL,")
    print("Redis, Ray); cli µs: of the client processes.")
    bare = {m.point: m for m in results if m.server == "bare"}
    rows = [(m, bare[m.point]) for m in results if m.server != "bare" and m.point in bare]
    if rows:
        print("\nexchange / bare at the same point: delivered msgs/s ratio, p99 ratio")
        for m, b in rows:
            rate = m.rate / b.rate if b.rate else math.nan
            p99 = m.fleet.total.percentile_ms(99) / b.fleet.total.percentile_ms(99)
            print(f"{m.point!s:>9} {m.server:<14} msgs/s x{rate:.2f}  p99 x{p99:.2f}")


def print_replicas(results: Sequence[Measured]) -> None:
    """Print the exchange's figures per WebSocket replica (worth it with several)."""
    rows = [m for m in results if m.server != "bare"]
    if not any(len(m.fleet.replicas) > 1 for m in rows):
        return
    header = (
        f"{'point':>9} {'server':<14} {'replica':<24} {'conns':>6} {'msgs/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'CPU':>5} {'µs/msg':>7}"
    )
    print("\nper WebSocket replica\n" + header + "\n" + "-" * len(header))
    for m in rows:
        for tag, figures in sorted(m.fleet.replicas.items()):
            cpu = m.replica_cpu.get(tag)
            share = f"{100 * cpu / m.duration_s:.0f}%" if cpu is not None else "-"
            print(
                f"{m.point!s:>9} {m.server:<14} {tag[-24:]:<24} {figures.connections:>6} "
                f"{figures.count / m.duration_s:>8,.0f} {_ms(figures.percentile_ms(50)):>7} "
                f"{_ms(figures.percentile_ms(99)):>7} {share:>5} "
                f"{_us(cpu, figures.count) if cpu is not None else '-':>7}"
            )


def print_single(singles: dict[int, dict[str, dict[str, Any]]], skip: int) -> None:
    """Print one client's order latency over the socket and over REST, side by side."""
    if not singles:
        return
    print(f"\none client placing orders, one at a time (the first {skip} of each left out)")
    for replicas, paths in singles.items():
        for path, run in paths.items():
            values = sorted(run["latencies_ms"][skip:])
            if not values:
                continue
            p99 = values[min(len(values) - 1, math.ceil(0.99 * len(values)) - 1)]
            print(
                f"  r={replicas} {path:<10} n={len(values):>4} p50 "
                f"{statistics.median(values):6.2f} ms  p99 {p99:6.2f} ms  answers {run['answers']}"
            )
