"""The exchange side of the fan-out bench (`bench/ws_bench.py`): where its gateway replicas
listen, which process each one is, and the single client that places orders over the
socket and over REST.

`clob up` itself is started and set up with `bench/rest_bench.py`'s helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.rest_bench import (
    HOST,
    MARKET,
    Connection,
    Exchange,
    order_body,
    render,
    server_processes,
)
from serve_app.app import ws_name
from serve_app.launcher import APP_NAME

# `server SERVE_REPLICA_<app>-<deployment>-<id> <host>:<port> check` lines of HAProxy's
# backends: the replicas' own HTTP ports (direct ingress).
_SERVER_LINE = "^\\s*server\\s+SERVE_REPLICA_{app}-\\S+\\s+([\\d.]+):(\\d+)"
Orders = list[dict[str, Any]]


@dataclass(frozen=True)
class Replica:
    """One gateway replica: its direct-ingress port, its process, its Serve tag."""

    port: int
    pid: int | None
    tag: str


def haproxy_config(exchange: Exchange) -> Path | None:
    """Return the HAProxy configuration file Serve writes for this exchange: the `-f`
    argument of its HAProxy process."""
    for proc in server_processes(exchange):
        with contextlib.suppress(psutil.Error):
            args = proc.cmdline()
            if args and Path(args[0]).name == "haproxy" and "-f" in args[:-1]:
                path = Path(args[args.index("-f") + 1])
                if path.exists():
                    return path
    return None


def replica_ports(exchange: Exchange, app: str) -> list[int]:
    """Return the ports HAProxy forwards to for the application `app` (one per replica),
    from its config."""
    path = haproxy_config(exchange)
    if path is None:
        return []
    line = re.compile(_SERVER_LINE.format(app=re.escape(app)), re.MULTILINE)
    return sorted({int(port) for _, port in line.findall(path.read_text())})


def listening_pid(procs: list[psutil.Process], port: int) -> int | None:
    """Return the pid of the process (among `procs`) that listens on `port`."""
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                    return proc.pid
    return None


async def welcome_of(url: str) -> dict[str, Any]:
    """Return the `welcome` message a new connection to `url` gets."""
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, open_timeout=30) as ws:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return message


def replicas(
    exchange: Exchange, expected: int, ws_app: bool = True, timeout_s: float = 120.0
) -> list[Replica]:
    """Return the replicas serving /ws (the WebSocket application's, else the REST
    application's) once `expected` of them are in HAProxy's config and answer on their own
    ports (tag from a probe's `welcome`, pid from the listening socket)."""
    deadline = time.monotonic() + timeout_s
    while True:
        ports = replica_ports(exchange, ws_name(APP_NAME) if ws_app else APP_NAME)
        found: list[Replica] = []
        procs = server_processes(exchange)
        for port in ports:
            try:
                tag = str(asyncio.run(welcome_of(f"ws://{HOST}:{port}/ws")).get("replica"))
            except Exception as exc:  # no /ws (yet): the replica is known by its port
                print(f"replica on port {port}: no welcome ({type(exc).__name__}: {exc})")
                tag = f"port {port}"
            found.append(Replica(port, listening_pid(procs, port), tag))
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(2)


# -- one client placing orders ------------------------------------------------------------------


def single_orders(count: int, seed: int) -> Orders:
    """Return `count` order bodies like the load's (passive ones and crossing IOCs)."""
    rng = random.Random(seed)
    return [
        order_body(rng, "buy" if i % 2 == 0 else "sell", rng.random() < 0.3) for i in range(count)
    ]


async def ws_place(url: str, key: str, orders: Orders, pace_s: float) -> dict[str, Any]:
    """Place `orders` one at a time over one socket (`place` op, `X-API-Key` at the
    handshake), one every `pace_s` at most; return the latencies (ms) and the answers'
    kinds."""
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    answers: dict[str, int] = {}
    async with connect(
        url, compression=None, additional_headers={"X-API-Key": key}, open_timeout=30
    ) as ws:
        json.loads(await ws.recv())  # the welcome
        for i, order in enumerate(orders, start=1):
            began = time.perf_counter()
            await ws.send(json.dumps({"op": "place", "id": i, "order": order}))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if answer.get("id") == i:
                    break
            latencies.append(1000 * (time.perf_counter() - began))
            kind = str(answer.get("op")) + (f" {answer.get('code')}" if "code" in answer else "")
            answers[kind] = answers.get(kind, 0) + 1
            await asyncio.sleep(max(0.0, began + pace_s - time.perf_counter()))
    return {"latencies_ms": latencies, "answers": answers}


async def rest_place(port: int, key: str, orders: Orders, pace_s: float) -> dict[str, Any]:
    """Place `orders` one at a time over one keep-alive HTTP connection, paced as
    `ws_place`; return the latencies (ms) and the statuses."""
    conn = Connection(port)
    await conn.open()
    latencies: list[float] = []
    answers: dict[str, int] = {}
    try:
        for order in orders:
            body = json.dumps(order).encode()
            raw = render(port, "POST", "/api/v1/orders", {"X-API-Key": key}, body)
            began = time.perf_counter()
            status, _ = await conn.request(raw)
            latencies.append(1000 * (time.perf_counter() - began))
            answers[str(status)] = answers.get(str(status), 0) + 1
            await asyncio.sleep(max(0.0, began + pace_s - time.perf_counter()))
    finally:
        await conn.close()
    return {"latencies_ms": latencies, "answers": answers}


def subscriptions(interval_ms: int | None) -> list[dict[str, Any]]:
    """Return what each fan-out client subscribes to: the market's book (default depth;
    the default conflation, 100 ms, unless `interval_ms` is given) and its trades."""
    book: dict[str, Any] = {"op": "subscribe", "id": 1, "channel": "orderbook", "market": MARKET}
    if interval_ms is not None:
        book["interval_ms"] = interval_ms
    return [book, {"op": "subscribe", "id": 2, "channel": "trades", "market": MARKET}]
