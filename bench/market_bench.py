"""Benchmark of one market actor with its journal (run: ``.venv/bin/python bench/market_bench.py``).

1. Throughput: batches of ``--batch`` limit orders (about one in five crossing) from
   ``--accounts`` accounts per ``submit`` call, ``--inflight`` calls at a time (as the
   gateway's replicas send them); every batch is reserved, matched, journaled (one
   committed transaction), applied to the ledger and projected before it returns.
   Prints orders/s, engine events/s and the wall time of each pipeline stage.
2. Recovery: keep submitting until the journal holds ``--events`` engine events (the actor
   snapshots every ``--snapshot-every`` events, as deployed), kill the actor and time until
   a new incarnation answers; again just before the next snapshot is due (the longest
   journal tail, the worst case); then take a snapshot, add ``--after`` more orders, kill and
   time again; then delete the snapshots and time a recovery from the journal alone.
   ``--cancels`` makes that share of the fill's commands cancels of live orders, so the
   book stays bounded as in a real market (without it every passive order rests).

``--stream`` also publishes the real-time stream to Redis (A/B the publisher's cost).

Uses ``DATABASE_URL`` if set, else starts the embedded PostgreSQL in a temporary directory.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import ray  # noqa: E402

from actors.accounts import AccountId  # noqa: E402
from actors.bootstrap import start_core  # noqa: E402
from actors.contracts import CancelOrder, OrderRequest, PlaceOrder  # noqa: E402
from actors.engine import Lots, MarketSpec, OrderId, OrderKind, Side, Ticks  # noqa: E402
from actors.infra.ray_env import prefer_exchange_workers  # noqa: E402
from actors.infra.services import ensure_services, stop_embedded  # noqa: E402
from actors.infra.settings import Settings  # noqa: E402
from actors.market.actor import MarketActor, market_actor_options  # noqa: E402
from actors.markets_repo import create_market  # noqa: E402
from bench.cpu import cpu_delta, cpu_report, cpu_snapshot  # noqa: E402
from tests.support.market_kit import create_database, credit, new_accounts  # noqa: E402

SHARDS = 2


def _batch(rng: random.Random, accounts: list[int], n: int, tag: str) -> list[OrderRequest]:
    out = []
    for i in range(n):
        side = "buy" if rng.random() < 0.5 else "sell"
        cross = rng.random() < 0.2
        offset = rng.randint(1, 20)
        price = 1_000 + (offset if side == "sell" else -offset)
        if cross:
            price = 1_000 - offset if side == "sell" else 1_000 + offset
        oid = f"{tag}-{i}"
        cmd = PlaceOrder(OrderId(oid), Side(side), OrderKind.LIMIT, qty=Lots(rng.randint(1, 10)),
                         price=Ticks(price))  # fmt: skip
        out.append(OrderRequest(oid, AccountId(rng.choice(accounts)), cmd))
    return out


async def _setup(
    url: str, namespace: str, accounts_n: int, redis_url: str | None
) -> tuple[str, list[int]]:
    await asyncio.to_thread(start_core, url, SHARDS, namespace, redis_url)
    conn = await asyncpg.connect(url)
    try:
        spec = MarketSpec(symbol="BENCH-USD", base_asset="BENCH", quote_asset="USD")
        await create_market(conn, spec)
    finally:
        await conn.close()
    accounts = await new_accounts(url, accounts_n)
    for a in accounts:
        await credit(namespace, SHARDS, a, "BENCH", 10**15)
        await credit(namespace, SHARDS, a, "USD", 10**17)  # 20 of them stay below MAX_ATOMS
    return "BENCH-USD", accounts


def _start(
    symbol: str, url: str, namespace: str, snapshot_every: int, redis_url: str | None
) -> Any:
    cls: Any = ray.remote(MarketActor)
    options = dict(market_actor_options(symbol), namespace=namespace, get_if_exists=True)
    return cls.options(**options).remote(
        symbol, url, SHARDS, namespace, snapshot_every_events=snapshot_every,
        redis_url=redis_url,
    )  # fmt: skip


def _with_cancels(
    rng: random.Random, batch: list[OrderRequest], live: list[OrderRequest], share: float
) -> list[OrderRequest]:
    """Replace a `share` of `batch` by cancels of orders sent earlier (`live` grows)."""
    out = []
    for req in batch:
        if live and rng.random() < share:
            victim = live.pop(rng.randrange(len(live)))
            assert isinstance(victim.command, PlaceOrder)
            cancel = CancelOrder(victim.command.id)
            out.append(OrderRequest(f"c-{victim.request_id}", victim.account_id, cancel))
        else:
            out.append(req)
            live.append(req)
    return out


async def _timed_recovery(market: Any) -> str:
    """Kill the actor; return the seconds until a new incarnation (another pid) answers,
    and how long its `recover()` took (the rest is Ray's restart and process start).

    (Polling until any answer is not enough: a call sent right after `ray.kill` can still
    reach the old process.)
    """
    old_pid = (await market.status.remote())["pid"]
    ray.kill(market, no_restart=False)
    start = time.perf_counter()
    while True:
        try:
            status = await market.status.remote()
            if status["pid"] != old_pid:
                elapsed = time.perf_counter() - start
                up = status["startup_seconds"]
                return (
                    f"{elapsed:.2f} s (recover() {up['recovery']:.2f} s, constructor to ready "
                    f"{up['since_constructed']:.2f} s)"
                )
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            pass
        await asyncio.sleep(0.02)


async def _track_functions(url: str) -> None:
    """Make every later session of the database count its functions' calls and time."""
    conn = await asyncpg.connect(url)
    try:
        name = url.rpartition("/")[2]
        await conn.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'all'")
    finally:
        await conn.close()


async def _db_counters(url: str) -> dict[str, float]:
    """Return the database's committed transactions and each function's calls and time."""
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, float] = {
            "transactions": float(
                await conn.fetchval(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        }
        for r in await conn.fetch("SELECT funcname, calls, total_time FROM pg_stat_user_functions"):
            out[f"{r['funcname']} calls"] = float(r["calls"])
            out[f"{r['funcname']} ms"] = float(r["total_time"])
        out["passes"] = float(
            await conn.fetchval("SELECT count(DISTINCT (market_id, created_at)) FROM journal")
        )
        return out
    finally:
        await conn.close()


def _print_db_work(before: dict[str, float], after: dict[str, float], orders: int) -> None:
    """Print what the database did per market pass between two `_db_counters`."""
    passes = after["passes"] - before["passes"]
    if passes <= 0:
        return
    # Statistics reach the views when a backend's transaction ends (and at most every
    # second or so): figures are approximate.
    parts = [f"{passes:.0f} passes ({orders / passes:.1f} orders each)"]
    for key in sorted(after):
        if key == "passes":
            continue
        delta = after[key] - before.get(key, 0.0)
        if delta:
            parts.append(f"{key} {delta / passes:.2f}")
    print("database work per pass: " + ", ".join(parts))


async def run(args: argparse.Namespace, url: str, redis_url: str | None) -> None:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    prefer_exchange_workers()
    ray.init(num_cpus=2, include_dashboard=False, namespace=namespace, log_to_driver=False)
    symbol, accounts = await _setup(url, namespace, args.accounts, redis_url)
    market = _start(symbol, url, namespace, args.snapshot_every, redis_url)
    await market.status.remote()
    rng = random.Random(7)
    batches = [_batch(rng, accounts, args.batch, f"t{b}") for b in range(args.batches)]
    window = asyncio.Semaphore(args.inflight)

    async def send(batch: list[OrderRequest]) -> None:
        async with window:
            await market.submit.remote(batch)

    db0 = await _db_counters(url)
    t0, orders = time.perf_counter(), args.batch * args.batches
    cpu0 = cpu_snapshot()
    await asyncio.gather(*(send(b) for b in batches))
    elapsed = time.perf_counter() - t0
    cpu = cpu_delta(cpu0, cpu_snapshot())
    status = await market.status.remote()
    print(f"throughput: {orders} orders in {elapsed:.2f} s = {orders / elapsed:,.0f} orders/s, "
          f"{status['event_seq'] / elapsed:,.0f} events/s (batch {args.batch}, "
          f"{args.inflight} in flight)")  # fmt: skip
    stages = status["stage_seconds"]
    print("pipeline stages (s, share of wall time): " + ", ".join(
        f"{k} {v:.2f} ({v / elapsed:.0%})" for k, v in stages.items()))  # fmt: skip
    if status["stream"] is not None:
        print(f"stream: {status['stream']}")
    print("CPU of every process on the machine in that phase (% of one core, per order):")
    print("\n".join(cpu_report(cpu, elapsed, orders, "order")))
    await asyncio.sleep(1.0)  # statistics reach the views at most every second or so
    _print_db_work(db0, await _db_counters(url), orders)
    b, live = args.batches, [r for batch in batches for r in batch]
    while status["event_seq"] < args.events:
        batch = _batch(rng, accounts, args.batch, f"r{b}")
        await market.submit.remote(_with_cancels(rng, batch, live, args.cancels))
        b += 1
        if b % 50 == 0:
            status = await market.status.remote()
    status = await market.status.remote()
    print(f"journal: {status['seq']:,} commands, {status['event_seq']:,} events, "
          f"{status['orders']:,} live orders")  # fmt: skip
    print(f"recovery, snapshots every {args.snapshot_every:,} events, "
          f"{status['events_since_snapshot']:,} since the last: "
          f"{await _timed_recovery(market)}")  # fmt: skip
    # The worst case: killed just before the next snapshot (the longest journal tail);
    # only for a journal at least one snapshot interval long.
    while (
        args.events >= args.snapshot_every
        and status["events_since_snapshot"] < args.snapshot_every - 3 * args.batch
    ):
        batch = _batch(rng, accounts, args.batch, f"w{b}")
        await market.submit.remote(_with_cancels(rng, batch, live, args.cancels))
        b += 1
        status = await market.status.remote()
    if args.events >= args.snapshot_every:
        print(f"recovery, {status['events_since_snapshot']:,} events since the last "
              f"snapshot: {await _timed_recovery(market)}")  # fmt: skip
    await market.snapshot_now.remote()
    for i in range(args.after // args.batch):
        await market.submit.remote(_batch(rng, accounts, args.batch, f"a{i}"))
    print(f"recovery from a snapshot + {args.after:,} orders: "
          f"{await _timed_recovery(market)}")  # fmt: skip
    if not args.skip_journal_only:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("DELETE FROM engine_snapshots")
        finally:
            await conn.close()
        print(f"recovery from the journal alone: {await _timed_recovery(market)}")
    if args.keep_database:
        print(f"database kept: {url}")
    ray.shutdown()


def main() -> None:
    """Parse options, start the database if needed, run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument(
        "--inflight", type=int, default=4, help="submit calls in flight (as a gateway has)"
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--after", type=int, default=10_000)
    parser.add_argument(
        "--snapshot-every", type=int, default=50_000, help="engine events between snapshots"
    )
    parser.add_argument(
        "--cancels", type=float, default=0.0, help="share of the fill's commands that cancel"
    )
    parser.add_argument("--skip-journal-only", action="store_true")
    parser.add_argument(
        "--stream", action="store_true", help="publish the real-time stream to Redis (A/B)"
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="(with DATABASE_URL) print it, keep it"
    )
    args = parser.parse_args()
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="clob-bench-")))
    services = ensure_services(settings)
    try:
        url = asyncio.run(create_database(services.database_url, "bench"))
        asyncio.run(_track_functions(url))
        asyncio.run(run(args, url, services.redis_url if args.stream else None))
    finally:
        if services.started:
            stop_embedded(settings)
        shutil.rmtree(settings.data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
