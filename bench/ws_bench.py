"""WebSocket fan-out benchmark (run: ``.venv/bin/python bench/ws_bench.py``).

For each point ``N@R`` of ``--points`` it measures, in one run on one machine:

1. **bare**: a minimal broadcast server made with the `websockets` library
   (`bench/ws_bare.py`, its own process) publishing R book-update-shaped messages a
   second (~275 bytes of JSON with ``E`` = the publication time, ms) to N clients;
2. **exchange**: `clob up` (started as `bench/rest_bench.py` does, on a temporary data
   directory), N clients on ``/ws`` each subscribed to the market's ``orderbook``
   (default depth, default 100 ms conflation) and ``trades``, while R book-changing
   orders a second go in over REST (an open loop on a few keep-alive connections).
   ``E`` is then the journal commit time of the batch the message comes from.

Clients are asyncio `websockets` clients, at most ``--per-process`` per process
(`bench/ws_clients.py`). Latency = receipt time - ``E`` (wall clock; ``E`` is whole ms, so
up to 1 ms too high), p50/p99/max over every data message published in the
``--duration`` window; messages delivered per second; server CPU per delivered message
(psutil: the bare server's process; the WebSocket replicas' and the whole server side's);
the clients' CPU; the load average and how busy the machine was. Then the exchange's
ratio to the bare server at the same N and R (delivered messages per second, p99).

Above ``--direct-above`` connections (7,500) the clients connect to the WebSocket replicas'
own ports (Serve's direct ingress, read from the HAProxy config Serve writes), not through
HAProxy; the ``path`` column says which. HAProxy needs 2.5 fds per connection and the hard
fd limit here is 20,000, so the bench sets Serve's HAProxy ``maxconn`` to 7,900 (its
default is 4,096) unless ``RAY_SERVE_HAPROXY_MAXCONN`` is set. With ``--replicas 2`` the
exchange runs with one replica, then with two, and prints per-replica figures (a client's
replica is the ``replica`` of its ``welcome``). Each exchange run first places
``--single`` orders from one client over the socket (``place``) and over REST, paced, for
single-client p50/p99 side by side. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import ws_exchange  # noqa: E402
from bench.cpu import Snapshot, cpu_delta, cpu_snapshot  # noqa: E402
from bench.rest_bench import (  # noqa: E402
    HOST,
    POOL_SIZE,
    Exchange,
    Result,
    free_port,
    load_average,
    open_loop,
    order_requests,
    server_processes,
    set_up_trading,
    start_exchange,
    stop_exchange,
)
from bench.ws_fleet import Fleet, FleetResult  # noqa: E402
from bench.ws_report import print_measured, print_replicas, print_single, print_summary  # noqa: E402

BARE = str(Path(__file__).resolve().with_name("ws_bare.py"))
# Serve's HAProxy allows 4,096 connections by default; it needs 2.5 fds per connection
# (two sockets, and splice pipes for a quarter of them) and fails to start when that
# passes the hard fd limit (20,000 here), so the bench raises it to what fits.
HAPROXY_MAXCONN_ENV = "RAY_SERVE_HAPROXY_MAXCONN"
HAPROXY_MAXCONN = 7900
SINGLE_WARMUP = 5  # single-client orders left out of its figures (connections, key cache)
LEAD_S = 1.5  # from telling the clients the window to its start (the order flow warms up)


@dataclass(frozen=True)
class Point:
    """N clients at R updates (bare) or orders (exchange) a second."""

    clients: int
    rate: float

    def __str__(self) -> str:
        return f"{self.clients}@{self.rate:g}"


@dataclass
class Measured:
    """One measurement of one point on one server."""

    server: str
    point: Point
    path: str
    duration_s: float
    fleet: FleetResult
    server_cpu: dict[str, float]  # CPU seconds per component in the window
    main_cpu_s: float  # the bare server's, or the gateway replicas' together
    replica_cpu: dict[str, float] = field(default_factory=dict)  # per replica tag
    load: str = ""
    busy: float = 0.0  # share of the machine's cores busy in the window
    flow: Result | None = None

    @property
    def rate(self) -> float:
        return self.fleet.total.count / self.duration_s


def machine_busy(before: Any, after: Any) -> float:
    """Return the share of all cores busy between two `psutil.cpu_times()`."""
    total = sum(after) - sum(before)
    idle = (after.idle + after.iowait) - (before.idle + before.iowait)
    return 1 - idle / total if total else 0.0


Window = tuple[Snapshot, Snapshot, float, Result | None]


def run_window(
    fleet: Fleet, duration_s: float, procs: list[psutil.Process],
    during: Callable[[], Coroutine[Any, Any, Result]] | None = None,
) -> Window:  # fmt: skip
    """Tell the clients the window, run `during` (the order flow) from now to its end,
    and snapshot the servers' CPU at its start and end."""
    t0 = time.time() + LEAD_S
    fleet.window(t0, t0 + duration_s)

    async def go() -> Window:
        task = asyncio.create_task(during()) if during is not None else None
        await asyncio.sleep(max(0.0, t0 - time.time()))
        before, machine0 = cpu_snapshot(procs), psutil.cpu_times()
        await asyncio.sleep(max(0.0, t0 + duration_s - time.time()))
        after, machine1 = cpu_snapshot(procs), psutil.cpu_times()
        flow = await task if task is not None else None
        return before, after, machine_busy(machine0, machine1), flow

    return asyncio.run(go())


def measure_bare(point: Point, args: argparse.Namespace) -> Measured:
    """Measure the bare `websockets` broadcast server at one point."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, BARE, "--port", str(port), "--rate", str(point.rate)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        json.loads(server.stdout.readline())  # listening
        with Fleet([f"ws://{HOST}:{port}/"], point.clients, args.per_process) as fleet:
            setup, _ = fleet.ready()
            procs = [psutil.Process(server.pid)]
            before, after, busy, _ = run_window(fleet, args.duration, procs)
            result = fleet.results(setup)
    finally:
        server.kill()
        server.wait(timeout=30)
    cpu = cpu_delta(before, after)
    return Measured(
        "bare", point, "direct", args.duration, result, cpu, sum(cpu.values()),
        load=load_average(), busy=busy,
    )  # fmt: skip


@dataclass
class Stack:
    """A running exchange with its accounts, requests and gateway replicas."""

    exchange: Exchange
    replicas: int
    keys: list[str]
    orders: list[bytes]
    gateways: list[ws_exchange.Replica]


def measure_exchange(point: Point, args: argparse.Namespace, stack: Stack) -> Measured:
    """Measure the exchange's WebSocket fan-out at one point, orders flowing over REST."""
    exchange = stack.exchange
    direct = point.clients > args.direct_above
    urls = (
        [f"ws://{HOST}:{g.port}/ws" for g in stack.gateways]
        if direct
        else [f"ws://{HOST}:{exchange.port}/ws"]
    )
    subscribe = ws_exchange.subscriptions(args.interval_ms)
    fleet = Fleet(urls, point.clients, args.per_process, subscribe=subscribe, welcome=True)
    with fleet:
        setup, samples = fleet.ready()
        procs = server_processes(exchange)
        flow = open_loop(
            exchange.port, f"orders {point.rate:g}/s", stack.orders, rate=point.rate,
            duration_s=args.duration + LEAD_S, connections=args.flow_connections,
        )  # fmt: skip
        before, after, busy, result = run_window(fleet, args.duration, procs, lambda: flow)
        fleet_result = fleet.results(setup)
    fleet_result.samples[:0] = samples
    replica_cpu = {
        g.tag: after[g.pid][1] - before[g.pid][1]
        for g in stack.gateways
        if g.pid is not None and g.pid in before and g.pid in after
    }
    cpu = cpu_delta(before, after)
    gateway = sum(replica_cpu.values()) if replica_cpu else cpu.get("ray::ServeReplica", 0.0)
    return Measured(
        f"exchange r={stack.replicas}", point, "direct" if direct else "haproxy",
        args.duration, fleet_result, cpu, gateway, replica_cpu, load_average(), busy, result,
    )  # fmt: skip


def start_stack(replicas: int, args: argparse.Namespace, workdir: Path) -> Stack:
    """Start `clob up` with `replicas` WebSocket replicas; create the market and accounts."""
    data_dir = workdir / f"data-r{replicas}"
    data_dir.mkdir()
    # The WebSocket application's replicas; --combined: the REST replicas serve /ws.
    os.environ["CLOB_SERVE__WS_REPLICAS"] = "0" if args.combined else str(replicas)
    os.environ["CLOB_SERVE__GATEWAY_REPLICAS"] = str(replicas) if args.combined else "1"
    os.environ.setdefault(HAPROXY_MAXCONN_ENV, str(HAPROXY_MAXCONN))
    began = time.monotonic()
    exchange = start_exchange(data_dir)
    try:
        keys = set_up_trading(exchange, args.accounts)
        gateways = ws_exchange.replicas(exchange, replicas, ws_app=not args.combined)
    except BaseException:
        stop_exchange(exchange)
        raise
    print(
        f"clob up ({replicas} {'REST+' if args.combined else ''}WebSocket replica(s)) on "
        f"{exchange.url} after "
        f"{time.monotonic() - began:.0f} s; replicas: "
        + ", ".join(f"{g.tag} port {g.port} pid {g.pid}" for g in gateways),
        flush=True,
    )
    orders = order_requests(exchange.port, keys[1:], POOL_SIZE, args.seed)
    return Stack(exchange, replicas, keys, orders, gateways)


def single_client(stack: Stack, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Place `--single` orders from one client over the socket, then as many over REST."""
    port, key = stack.exchange.port, stack.keys[0]
    pace_s = 1 / args.single_rate
    url = f"ws://{HOST}:{port}/ws"
    out = {}
    try:
        orders = ws_exchange.single_orders(args.single, args.seed + 1)
        out["websocket"] = asyncio.run(ws_exchange.ws_place(url, key, orders, pace_s))
    except Exception as exc:  # a figure less, not a failed bench
        print(f"single client over the socket failed: {type(exc).__name__}: {exc}")
    orders = ws_exchange.single_orders(args.single, args.seed + 2)
    out["rest"] = asyncio.run(ws_exchange.rest_place(port, key, orders, pace_s))
    return out


def parse_points(text: str) -> list[Point]:
    """Parse ``N@R,N@R,...``."""
    points = []
    for part in text.split(","):
        clients, _, rate = part.strip().partition("@")
        points.append(Point(int(clients), float(rate or 10)))
    return points


def run(args: argparse.Namespace, workdir: Path) -> tuple[list[Measured], dict[int, Any]]:
    """Run every measurement the options ask for; print each as it is done."""
    points = parse_points(args.points)
    results: list[Measured] = []
    singles: dict[int, Any] = {}

    def done(m: Measured) -> None:
        results.append(m)
        print_measured(m)
        time.sleep(args.settle)  # the servers close the clients' connections meanwhile

    if args.mode == "bare":
        for point in points:
            done(measure_bare(point, args))
        return results, singles
    configs = [1, args.replicas] if args.replicas > 1 else [1]
    for replicas in configs:
        stack = start_stack(replicas, args, workdir)
        try:
            if args.single:
                singles[replicas] = single_client(stack, args)
            for point in points:
                if args.mode == "both" and replicas == 1:
                    done(measure_bare(point, args))
                done(measure_exchange(point, args, stack))
        finally:
            stop_exchange(stack.exchange)
    return results, singles


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--points", default="1000@10,5000@10,10000@1",
        help="N@R,...: N clients at R updates (bare) or orders (exchange) per second",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per point")
    parser.add_argument("--mode", choices=("both", "bare", "exchange"), default="both")
    parser.add_argument(
        "--replicas", type=int, default=1, help="WebSocket replicas; >1: also 1, per replica"
    )
    parser.add_argument(
        "--combined", action="store_true",
        help="no WebSocket application: the REST replicas serve /ws (serve.ws_replicas 0)",
    )  # fmt: skip
    parser.add_argument("--per-process", type=int, default=2500, help="clients per process")
    parser.add_argument(
        "--direct-above", type=int, default=7500,
        help="more clients than this connect to the replicas' ports, not through HAProxy",
    )  # fmt: skip
    parser.add_argument("--accounts", type=int, default=8, help="funded accounts")
    parser.add_argument(
        "--flow-connections", type=int, default=16,
        help="REST connections the order flow may use at once",
    )  # fmt: skip
    parser.add_argument(
        "--interval-ms", type=int, default=None,
        help="the book subscription's conflation interval (default: the server's, 100)",
    )  # fmt: skip
    parser.add_argument("--single", type=int, default=100, help="single-client orders")
    parser.add_argument("--single-rate", type=float, default=15.0, help="their pace, /s")
    parser.add_argument("--settle", type=float, default=5.0, help="pause between points, s")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="clob-wsbench-"))
    print(f"load average before: {load_average()}", flush=True)
    try:
        results, singles = run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nload average after: {load_average()}")
    print_summary(results)
    print_replicas(results)
    print_single(singles, SINGLE_WARMUP)


if __name__ == "__main__":
    main()
