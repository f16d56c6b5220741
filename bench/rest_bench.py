"""End-to-end REST benchmark through `clob up` (run: ``.venv/bin/python bench/rest_bench.py``).

Starts ``clob up`` (Serve in HAProxy mode, market actor, ledger shards, embedded PostgreSQL
and Redis) in a subprocess on a temporary data directory and a free port, creates a market
and ``--accounts`` funded accounts with API keys (``clob keys create`` and the admin API),
then measures, for ``POST /api/v1/orders`` and, as a baseline without any actor hop,
``GET /health``:

1. Single client: ``--sequential`` requests one at a time on one keep-alive connection;
   p50/p90/p99 latency.
2. Throughput: ``--concurrency`` keep-alive connections for ``--duration`` seconds; 2xx
   responses per second, other statuses counted apart, p50/p99 latency.

Orders are limit orders on one market around a mid of 100.00: about 70% passive GTC orders
(buys below the mid, sells above, within ``BAND_TICKS`` ticks) and 30% crossing IOC
orders, three times larger, priced through the whole band, so they trade against the book
and keep it from growing without bound. Sides alternate. No ``client_order_id`` is sent.

The single-client phases use this process: asyncio streams writing pre-rendered HTTP/1.1
requests and parsing just the status line and body length. The throughput phases use
``wrk`` with a Lua script cycling over the same pre-rendered requests (``--generator auto``,
the default, or ``wrk``: installed with apt-get when missing and running as root), else the
same asyncio generator (``--generator python``, or when ``wrk`` cannot be had); on a small
machine the Python generator takes CPU from the server. The
table shows the generator's own CPU use so a saturated client can be told from a saturated
server, and the CPU time each server component used during the order throughput phase.

Everything runs on 127.0.0.1; ``clob up`` is stopped with SIGINT at the end (then
``clob down`` for anything left). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cpu import cpu_delta, cpu_report, cpu_snapshot  # noqa: E402

CLOB = str(Path(sys.executable).parent / "clob")
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 300.0
MARKET = "BENCH-USD"
MID_TICKS = 10_000  # 100.00 with a 0.01 tick
BAND_TICKS = 50
CROSS_SHARE = 0.3
POOL_SIZE = 8192


# -- the exchange under test ------------------------------------------------------------------


@dataclass
class Exchange:
    """A running `clob up` subprocess."""

    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_exchange(data_dir: Path) -> Exchange:
    """Start `clob up` on `data_dir` and a free port; return once /health answers 200."""
    port = free_port()
    drop = ("DATABASE_URL", "REDIS_URL", "RAY_ADDRESS", "SOLANA_RPC_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        CLOB_DATA_DIR=str(data_dir),
        CLOB_SERVE__PORT=str(port),
        CLOB_SERVE__HOST=HOST,
        CLOB_CONFIG=str(data_dir / "none.toml"),
        # The load comes from a few accounts far above 100 requests a minute each.
        CLOB_SERVE__RATE_LIMIT_PER_MINUTE="0",
    )
    log_path = data_dir.parent / f"{data_dir.name}-clob-up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [CLOB, "up"], env=env, cwd=data_dir, stdout=log, stderr=subprocess.STDOUT
        )
    exchange = Exchange(proc, port, env, data_dir, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"clob up exited with {proc.returncode}:\n{exchange.log_tail()}")
        try:
            with urllib.request.urlopen(f"{exchange.url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return exchange
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"/health did not answer in {STARTUP_TIMEOUT_S:.0f} s\n{exchange.log_tail()}"
    )


def stop_exchange(exchange: Exchange) -> None:
    """SIGINT `clob up`, wait for it (kill after 90 s), then `clob down` for any leftover."""
    proc = exchange.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    subprocess.run(
        [CLOB, "down"], env=exchange.env, cwd=exchange.data_dir, capture_output=True,
        timeout=120, check=False,
    )  # fmt: skip


def admin_call(exchange: Exchange, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST an admin request; return the JSON answer (raise on a non-2xx status)."""
    token = (exchange.data_dir / "admin_token").read_text().strip()
    request = urllib.request.Request(
        f"{exchange.url}/api/v1{path}",
        data=json.dumps(body).encode(),
        headers={"X-Admin-Token": token, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            result: dict[str, Any] = json.loads(answer.read())
            return result
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"POST {path}: {exc.code} {exc.read()[:500]!r}") from None


def create_key(exchange: Exchange, label: str) -> tuple[int, str]:
    """Create an account and an API key with `clob keys create`; return both."""
    result = subprocess.run(
        [CLOB, "keys", "create", "--label", label], env=exchange.env, cwd=exchange.data_dir,
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    return int(fields["account_id"]), fields["api_key"].strip()


def set_up_trading(exchange: Exchange, accounts: int) -> list[str]:
    """Create the market and `accounts` funded accounts; return their API keys."""
    market = {
        "symbol": MARKET, "base_asset": "BNCH", "quote_asset": "USDB", "base_decimals": 6,
        "quote_decimals": 6, "tick_size": "0.01", "lot_size": "0.1", "maker_fee_bps": 10,
        "taker_fee_bps": 20,
    }  # fmt: skip
    admin_call(exchange, "/admin/markets", market)
    with ThreadPoolExecutor(max_workers=4) as pool:
        created = list(pool.map(lambda i: create_key(exchange, f"bench-{i}"), range(accounts)))
    for account, _ in created:
        for asset, amount in (("BNCH", "1000000"), ("USDB", "100000000")):
            admin_call(
                exchange,
                "/admin/credits",
                {"account_id": account, "asset": asset, "amount": amount},
            )
    return [key for _, key in created]


# -- requests ---------------------------------------------------------------------------------


def order_body(rng: random.Random, side: str, cross: bool) -> dict[str, Any]:
    """Return one limit order: passive GTC inside the band, or a crossing IOC sweep."""
    if cross:
        price = MID_TICKS + BAND_TICKS if side == "buy" else MID_TICKS - BAND_TICKS
        qty = rng.randint(2, 4)
    else:
        offset = rng.randint(1, BAND_TICKS)
        price = MID_TICKS - offset if side == "buy" else MID_TICKS + offset
        qty = 1
    body: dict[str, Any] = {
        "market": MARKET, "side": side, "price": f"{price // 100}.{price % 100:02d}",
        "qty": str(qty),
    }  # fmt: skip
    if cross:
        body["tif"] = "ioc"
    return body


def render(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """Return a complete HTTP/1.1 keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def order_requests(port: int, keys: Sequence[str], count: int, seed: int) -> list[bytes]:
    """Return `count` rendered order requests: alternating sides, keys round robin."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        side = "buy" if i % 2 == 0 else "sell"
        body = json.dumps(order_body(rng, side, rng.random() < CROSS_SHARE)).encode()
        key = keys[(i // 2) % len(keys)]
        out.append(render(port, "POST", "/api/v1/orders", {"X-API-Key": key}, body))
    return out


# -- the Python load generator ----------------------------------------------------------------


class ConnectionClosedError(Exception):
    """The server closed the connection."""


class Connection:
    """One keep-alive HTTP/1.1 connection that sends raw requests and reads status + body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request; return its status and body (reconnecting when needed)."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            await self.close()
            raise ConnectionClosedError from None
        status_line, _, header_block = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in header_block.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            body = await self._chunked()
        else:
            body = b""
        if headers.get(b"connection") == b"close":
            await self.close()
        return status, body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await self.reader.readexactly(size + 2))
            if size == 0:
                return b"".join(parts)


@dataclass
class Result:
    """The figures of one measurement."""

    name: str
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    client_cpu_s: float | None = None
    generator: str = "python"
    percentiles_ms: dict[int, float] | None = None  # given by wrk
    samples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.startswith("2"))

    @property
    def errors(self) -> dict[str, int]:
        return {s: n for s, n in sorted(self.statuses.items()) if not s.startswith("2")}

    def percentile_ms(self, p: int) -> float:
        if self.percentiles_ms is not None:
            return self.percentiles_ms[p]
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))
        return ordered[index] / 1e6


def _note(result: Result, status: int, body: bytes) -> None:
    result.statuses[str(status)] += 1
    if not 200 <= status < 300 and len(result.samples) < 3:
        result.samples.append(f"{status} {body[:200].decode(errors='replace')}")


async def _send(conn: Connection, raw: bytes, result: Result, since_ns: int) -> bool:
    """Send one request and record it in `result`, its latency counted from `since_ns`;
    return False when the connection failed (it is closed then, and counted)."""
    try:
        status, body = await conn.request(raw)
    except (ConnectionClosedError, OSError):
        result.statuses["conn_error"] += 1
        await conn.close()
        return False
    result.latencies_ns.append(time.perf_counter_ns() - since_ns)
    _note(result, status, body)
    return True


async def sequential(port: int, name: str, requests: Sequence[bytes]) -> Result:
    """Send the requests one at a time on one connection; time each one."""
    result = Result(name)
    conn = Connection(port)
    await conn.open()
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        for raw in requests:
            await _send(conn, raw, result, time.perf_counter_ns())
    finally:
        result.wall_s = time.perf_counter() - t0
        result.client_cpu_s = time.process_time() - cpu0
        await conn.close()
    return result


async def throughput(
    port: int, name: str, requests: Sequence[bytes], concurrency: int, duration_s: float
) -> Result:
    """Keep `concurrency` connections busy for `duration_s`; time every request."""
    result = Result(name)
    source: Iterator[bytes] = itertools.cycle(requests)
    connections = [Connection(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))

    async def worker(conn: Connection, deadline: float) -> None:
        while time.perf_counter() < deadline:
            if not await _send(conn, next(source), result, time.perf_counter_ns()):
                await asyncio.sleep(0.01)

    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(worker(c, t0 + duration_s) for c in connections))
    finally:
        result.wall_s = time.perf_counter() - t0
        result.client_cpu_s = time.process_time() - cpu0
        await asyncio.gather(*(c.close() for c in connections))
    return result


async def open_loop(
    port: int, name: str, requests: Sequence[bytes], *, rate: float, duration_s: float,
    connections: int,
) -> Result:  # fmt: skip
    """Send requests at a fixed `rate` for `duration_s`, whatever the answers' pace.

    Request i is due at ``t0 + i / rate`` and goes out on an idle connection of a pool of
    `connections` (opened beforehand); its latency runs from when it was due, not from when
    it was sent, so a request that waited for a free connection or for the generator itself
    counts that wait (no coordinated omission, as in wrk2). With a closed loop of N
    connections, latency is just N / throughput (Little's law); this phase shows the
    latency at a given offered rate instead.
    """
    result = Result(name)
    source: Iterator[bytes] = itertools.cycle(requests)
    pool = [Connection(port) for _ in range(connections)]
    await asyncio.gather(*(c.open() for c in pool))
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in pool:
        idle.put_nowait(conn)
    in_flight: set[asyncio.Task[None]] = set()
    late_ns: list[int] = []

    async def one(raw: bytes, due_ns: int) -> None:
        conn = await idle.get()
        late_ns.append(time.perf_counter_ns() - due_ns)
        try:
            await _send(conn, raw, result, due_ns)
        finally:
            idle.put_nowait(conn)  # closed after an error: it reconnects on its next request

    interval_ns = round(1e9 / rate)
    cpu0, t0 = time.process_time(), time.perf_counter_ns()
    end_ns = t0 + round(duration_s * 1e9)
    sent = 0
    try:
        while True:
            now = time.perf_counter_ns()
            due = t0 + sent * interval_ns
            if due >= end_ns:
                break
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                continue
            while due <= now and due < end_ns:  # everything due by now, late ones included
                task = asyncio.create_task(one(next(source), due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
                due = t0 + sent * interval_ns
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=30)
    finally:
        result.wall_s = (time.perf_counter_ns() - t0) / 1e9
        result.client_cpu_s = time.process_time() - cpu0
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*(c.close() for c in pool))
    result.generator = "open"
    unanswered = sent - len(result.latencies_ns) - result.statuses["conn_error"]
    if unanswered:
        result.statuses["unanswered"] += unanswered
    late = sorted(late_ns)
    if late:
        p50, p99 = late[len(late) // 2] / 1e6, late[int(0.99 * (len(late) - 1))] / 1e6
        print(
            f"{name}: {sent} sent at {rate:.0f}/s; start lateness p50 {p50:.2f} ms, p99 "
            f"{p99:.2f} ms (waiting for the generator or a free connection, counted in latency)"
        )
    return result


# -- wrk --------------------------------------------------------------------------------------

_WRK_LUA = r"""
local f = io.open(os.getenv("BENCH_REQUESTS"), "rb")
local data = f:read("*a")
f:close()
local reqs = {}
for chunk in string.gmatch(data, "(.-)%z") do reqs[#reqs + 1] = chunk end
statuses = {}
local i = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("offset", thread_id * 997)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  i = offset
  statuses = {}
end

function request()
  i = i + 1
  return reqs[(i % #reqs) + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%d": %d', k, v) end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"timeout": %d, "p50": %d, "p90": %d, "p99": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), table.concat(parts, ", ")))
end
"""


def ensure_wrk() -> str | None:
    """Return the path of `wrk`, installing it with apt-get (as root) when missing."""
    path = shutil.which("wrk")
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    print("installing wrk with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"]):
        subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
        path = shutil.which("wrk")
        if path:
            return path
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "wrk"], env=env, capture_output=True, timeout=300,
        check=False,
    )  # fmt: skip
    return shutil.which("wrk")


def wrk_throughput(
    wrk: str, workdir: Path, name: str, requests: Sequence[bytes], *, port: int,
    concurrency: int, duration_s: float,
) -> Result:  # fmt: skip
    """Run `wrk` with a Lua script cycling over `requests`; parse its summary."""
    data = workdir / (re.sub(r"\W", "_", name) + ".bin")
    data.write_bytes(b"".join(r + b"\0" for r in requests))
    script = workdir / "bench.lua"
    script.write_text(_WRK_LUA)
    command = [
        wrk, "-t2", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--timeout", "10s",
        "-s", str(script), f"http://{HOST}:{port}/",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = psutil.Popen(
        command, env=dict(os.environ, BENCH_REQUESTS=str(data)), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    cpu = 0.0
    try:
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                cpu = times.user + times.system
            time.sleep(0.2)
        output = proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    wall = time.perf_counter() - t0
    match = re.search(r"BENCH_JSON (\{.*\})", output)
    if match is None:
        raise RuntimeError(f"wrk gave no summary:\n{output[-2000:]}")
    summary = json.loads(match.group(1))
    result = Result(name, generator="wrk", client_cpu_s=cpu)
    result.wall_s = summary["duration_us"] / 1e6 or wall
    result.statuses.update({k: int(v) for k, v in summary["statuses"].items()})
    for kind in ("connect", "read", "write", "timeout"):
        if summary[kind]:
            result.statuses[f"sock_{kind}"] += int(summary[kind])
    result.percentiles_ms = {p: summary[f"p{p}"] / 1000 for p in (50, 90, 99)}
    return result


# -- server CPU accounting --------------------------------------------------------------------


def server_processes(exchange: Exchange) -> list[psutil.Process]:
    """Return `clob up`'s process tree plus the embedded PostgreSQL and Redis servers."""
    procs: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(exchange.proc.pid)
        procs += [root, *root.children(recursive=True)]
    pid_files = (
        (exchange.data_dir / "postgres" / "postmaster.pid", True),
        (exchange.data_dir / "redis" / "redis.pid", False),
    )
    for pid_file, tree in pid_files:
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            server = psutil.Process(int(pid_file.read_text().split()[0]))
            procs += [server, *(server.children(recursive=True) if tree else [])]
    seen: set[int] = set()
    return [p for p in procs if not (p.pid in seen or seen.add(p.pid))]


# -- report -----------------------------------------------------------------------------------


def print_table(results: Sequence[Result]) -> None:
    """Print one row per measurement."""
    header = (
        f"{'measurement':<30} {'gen':>6} {'n(2xx)':>8} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'gen CPU':>8}  errors"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        rate = r.ok / r.wall_s if r.wall_s else 0.0
        cpu = f"{100 * r.client_cpu_s / r.wall_s:.0f}%" if r.client_cpu_s and r.wall_s else "-"
        errors = ", ".join(f"{s}: {n}" for s, n in r.errors.items()) or "none"
        print(
            f"{r.name:<30} {r.generator:>6} {r.ok:>8} {rate:>8.0f} {r.percentile_ms(50):>8.2f} "
            f"{r.percentile_ms(90):>8.2f} {r.percentile_ms(99):>8.2f} {cpu:>8}  {errors}"
        )
        for sample in r.samples:
            print(f"{'':<32}e.g. {sample}")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


# -- main -------------------------------------------------------------------------------------


def measure(
    args: argparse.Namespace, exchange: Exchange, keys: list[str], workdir: Path, wrk: str | None
) -> tuple[list[Result], dict[str, float]]:
    """Run the four measurements; return them and the server CPU of the order load phase."""
    port = exchange.port
    health = [render(port, "GET", "/health", {})]
    orders = order_requests(port, keys, POOL_SIZE, args.seed)
    single = order_requests(port, keys[:1], args.sequential, args.seed + 1)

    # Warm-up: every key once through auth (its cache), connections, the batcher.
    asyncio.run(throughput(port, "warm-up", orders[: 4 * len(keys)], 8, 1.0))
    asyncio.run(sequential(port, "warm-up", health * 50))

    def load(name: str, requests: list[bytes]) -> Result:
        if wrk is not None:
            return wrk_throughput(
                wrk, workdir, name, requests, port=port, concurrency=args.concurrency,
                duration_s=args.duration,
            )  # fmt: skip
        return asyncio.run(throughput(port, name, requests, args.concurrency, args.duration))

    label = f"c={args.concurrency} {args.duration:.0f}s"
    results = [asyncio.run(sequential(port, "GET /health  1 client", health * args.sequential))]
    stages = market_stages(exchange)
    results.append(asyncio.run(sequential(port, "POST /orders 1 client", single)))
    print_stages("single client, ms per order", stages, market_stages(exchange), len(single))
    results.append(load(f"GET /health  {label}", health))
    procs = server_processes(exchange)
    closed, cpu = order_phase(
        exchange, procs, "during the load", lambda: load(f"POST /orders {label}", orders)
    )
    results.append(closed)
    print_book(exchange)
    if args.rate > 0:
        name = f"POST /orders {args.rate:.0f}/s open"
        fixed_rate = open_loop(
            port, name, orders, rate=args.rate, duration_s=args.duration,
            connections=args.rate_connections,
        )  # fmt: skip
        opened, open_cpu = order_phase(
            exchange, procs, f"at {args.rate:.0f}/s", lambda: asyncio.run(fixed_rate)
        )
        results.append(opened)
        wall, ok = opened.wall_s, max(opened.ok, 1)
        print(f"server CPU at {args.rate:.0f}/s ({wall:.0f} s; % of one core, per order):")
        print("\n".join(cpu_report(open_cpu, wall, ok, "order")))
    return results, cpu


def order_phase(
    exchange: Exchange, procs: list[psutil.Process], when: str, run: Callable[[], Result]
) -> tuple[Result, dict[str, float]]:
    """Run one order load phase; print the market's passes in it and their stage times;
    return its result and the server CPU it used per component."""
    before = cpu_snapshot(procs)
    seq = asyncio.run(journal_batches(exchange, None))[0]
    stages = market_stages(exchange)
    result = run()
    cpu = cpu_delta(before, cpu_snapshot(procs))
    stages_after = market_stages(exchange)
    _, sizes = asyncio.run(journal_batches(exchange, seq))
    print_batches(when, sizes, stages, stages_after)
    return result, cpu


def print_batches(
    when: str,
    sizes: list[int],
    before: dict[str, float] | None,
    after: dict[str, float] | None,
) -> None:
    """Print how many orders the market's passes held in a phase, and its stage times."""
    if not sizes:
        return
    print(
        f"market batches {when}: {len(sizes)}, orders per batch: mean "
        f"{statistics.fmean(sizes):.1f}, median {statistics.median(sizes):.0f}, max {max(sizes)}"
    )
    print_stages(f"{when}, ms per batch", before, after, len(sizes))


def print_stages(
    what: str, before: dict[str, float] | None, after: dict[str, float] | None, count: int
) -> None:
    """Print the market pipeline's stage times between two `market_stages`, per `count`."""
    if before is None or after is None or count == 0:
        return
    spent = {k: after[k] - before.get(k, 0.0) for k in after}
    times = ", ".join(f"{k} {1000 * v / count:.1f}" for k, v in spent.items())
    print(f"market pipeline {what}: {times}")


def market_stages(exchange: Exchange) -> dict[str, float] | None:
    """Return the market actor's `stage_seconds` (joining the exchange's Ray for a moment),
    or None when it cannot be reached."""
    import ray

    try:
        ray.init(address="auto", namespace="clob", log_to_driver=False)
        market = ray.get_actor(f"market:{MARKET}", namespace="clob")
        stages: dict[str, float] = ray.get(market.status.remote(), timeout=30)["stage_seconds"]
        return stages
    except Exception as exc:  # a figure less, not a failed benchmark
        print(f"market stages unavailable: {type(exc).__name__}: {exc}")
        return None
    finally:
        ray.shutdown()


async def journal_batches(exchange: Exchange, after_seq: int | None) -> tuple[int, list[int]]:
    """Return the journal's last seq and the size of each batch journaled after `after_seq`.

    A market actor journals each `submit` batch in one transaction, so its rows share
    `created_at` (the transaction's start time): that groups them by batch.
    """
    import asyncpg

    state = json.loads((exchange.data_dir / "state.json").read_text())
    conn = await asyncpg.connect(state["database_url"])
    try:
        last = int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM journal"))
        if after_seq is None:
            return last, []
        rows = await conn.fetch(
            "SELECT count(*) AS n FROM journal WHERE seq > $1 GROUP BY market_id, created_at",
            after_seq,
        )
        return last, [int(r["n"]) for r in rows]
    finally:
        await conn.close()


def print_book(exchange: Exchange) -> None:
    """Print the size of the book after the load (it should stay bounded)."""
    url = f"{exchange.url}/api/v1/orderbook/{MARKET}?depth=1000"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            book = json.loads(answer.read())
    except OSError as exc:
        print(f"book after the load: unavailable ({exc})")
        return
    sides = {
        side: (len(book[side]), sum(level["count"] for level in book[side]))
        for side in ("bids", "asks")
    }
    text = ", ".join(f"{side} {levels} levels / {n} orders" for side, (levels, n) in sides.items())
    print(f"book after the load: {text}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per load phase")
    parser.add_argument("--concurrency", type=int, default=64, help="connections under load")
    parser.add_argument("--sequential", type=int, default=500, help="single-client requests")
    parser.add_argument("--accounts", type=int, default=16, help="funded trading accounts")
    parser.add_argument(
        "--generator", choices=("auto", "python", "wrk"), default="auto",
        help="load generator of the throughput phases (auto: wrk, installed if missing, "
        "else python)",
    )  # fmt: skip
    parser.add_argument(
        "--rate", type=float, default=1000.0,
        help="orders/s offered in the open-loop phase (0: skip it)",
    )  # fmt: skip
    parser.add_argument(
        "--rate-connections", type=int, default=128,
        help="connections the open-loop phase may use at once",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    wrk = ensure_wrk() if args.generator != "python" else None
    if args.generator != "python" and wrk is None:
        print("wrk is not available; using the Python generator", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="clob-restbench-"))
    data_dir = workdir / "data"
    data_dir.mkdir()
    print(f"load average before: {load_average()}", flush=True)
    started = time.monotonic()
    exchange = None
    try:
        exchange = start_exchange(data_dir)
        print(f"clob up answering on {exchange.url} after {time.monotonic() - started:.0f} s")
        keys = set_up_trading(exchange, args.accounts)
        print(f"market {MARKET} and {len(keys)} funded accounts ready", flush=True)
        results, cpu = measure(args, exchange, keys, workdir, wrk)
    finally:
        if exchange is not None:
            stop_exchange(exchange)
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"load average after:  {load_average()}")
    print()
    print_table(results)
    health_rate = results[2].ok / results[2].wall_s if results[2].wall_s else 0.0
    order_rate = results[3].ok / results[3].wall_s if results[3].wall_s else 0.0
    print()
    p50_ratio = results[1].percentile_ms(50) / results[0].percentile_ms(50)
    share = f"{order_rate / health_rate:.0%}" if health_rate else "-"
    print(f"orders vs /health: single-client p50 x{p50_ratio:.1f}, throughput {share}")
    wall = results[3].wall_s
    print()
    print(f"server CPU during the order throughput phase ({wall:.0f} s; % of one core, per order):")
    print("\n".join(cpu_report(cpu, wall, max(results[3].ok, 1), "order")))
    mean = statistics.fmean(results[3].latencies_ns) / 1e6 if results[3].latencies_ns else 0.0
    if mean:
        print(f"mean order latency under load: {mean:.2f} ms")


if __name__ == "__main__":
    main()
