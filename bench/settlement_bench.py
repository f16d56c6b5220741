"""Settlement on the embedded chain: four batching variants side by side, in one run.

Starts PostgreSQL (migrated), the embedded chain with the built program (`make program`),
a local Ray with the trading core (controller, market actors, two ledger shards) and the
custody actors; per mix of `--accounts`, a market whose accounts are funded by real
deposits (`settlement_setup.py`; the deposit listener is then stopped, so that its reads
of every vault's new signatures do not share the two cores with what is measured). Then,
for each variant, a settlement batcher (`settlement:0`, the product's actor with its real
adapters) is started for the market, `--trades` trades are made through the market actor
as fast as it takes them, or at `--rate` trades a second (one resting order and the order
that fills it, between two random accounts, 1-5 lots), and the run ends when every one of
them is in a confirmed settlement; the batcher is then stopped and the next variant starts
on the same market and accounts (its trades come after the previous run's mark). Before
the first variant, a warm-up run (not reported) with the default variant makes each vault
trade once, so the lookup table holds the market's vaults (up to its 256 addresses) before
any measurement.

Variants: (a) netted with lookup tables, one `settle` instruction per transaction,
(b) netted without tables, (c) unnetted (one `settle` per trade) with tables, (d) seed
000: unnetted, at most 10 trades per batch, no tables; and (e), the default: (a) with 2
instructions per transaction (`--variants`, default a,b,c,d: the first listed also
warms up).

Figures per variant, from the records (`trades`, `settlements`):
- trades settled per second: the run's trades / (last confirmed_at - first executed_at);
- drain: last confirmed_at - last executed_at (how long settlement trails the trading);
- lag from a trade's executed_at to its settlement's confirmed_at, p50 and p99 (in a
  burst most of it is queueing behind earlier batches; `--rate` below the variant's
  throughput shows the lag of a steady flow);
- compute units (the simulation's, `cu_consumed`), bytes (`tx_bytes`) and fee lamports
  per trade; trades per transaction;
and the ratio of each to seed 000's variant (d). Asserts nothing.

    RAY_TMPDIR=/tmp/ray-bench .venv/bin/python bench/settlement_bench.py \
        --trades 2000 --accounts 20,200
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import ray  # noqa: E402
from solders.keypair import Keypair  # noqa: E402

from actors.chain.embedded import EmbeddedChain  # noqa: E402
from actors.chain.keys import ChainKeys  # noqa: E402
from actors.chain.program_idl import PROGRAM_ID, PROGRAM_SO  # noqa: E402
from actors.infra.ray_env import prefer_exchange_workers  # noqa: E402
from actors.infra.services import ensure_services, stop_embedded  # noqa: E402
from actors.infra.settings import Settings  # noqa: E402
from actors.settlement.actor import (  # noqa: E402
    SettlementConfig,
    settlement_actor_name,
    start_settlement,
)
from actors.settlement.config import BatcherConfig  # noqa: E402
from bench.settlement_setup import (  # noqa: E402
    BenchMarket,
    Stack,
    open_market,
    pause_deposits,
    start_stack,
    submit,
    trade_orders,
    wait_until,
)
from tests.support.chain import write_keys  # noqa: E402
from tests.support.market_kit import create_database  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """A batching variant: what the batcher is configured with."""

    key: str
    label: str
    netting: bool
    max_trades: int
    tables: bool
    max_instructions: int = 1


VARIANTS = (
    Variant("a", "netted+ALT", True, 10_000, True),
    Variant("b", "netted", True, 10_000, False),
    Variant("c", "unnetted+ALT", False, 10_000, True),
    Variant("d", "seed 000", False, 10, False),
    Variant("e", "netted+ALT x2", True, 10_000, True, max_instructions=2),
)
SEED = next(v for v in VARIANTS if v.key == "d")

_RUN = """
SELECT count(*) AS trades, count(s.confirmed_at) AS confirmed,
       extract(epoch FROM max(s.confirmed_at) - min(t.executed_at))::float8 AS span_s,
       extract(epoch FROM max(s.confirmed_at) - max(t.executed_at))::float8 AS drain_s,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM s.confirmed_at - t.executed_at))::float8 AS p50_s,
       percentile_cont(0.99) WITHIN GROUP (
           ORDER BY extract(epoch FROM s.confirmed_at - t.executed_at))::float8 AS p99_s
FROM trades t JOIN settlements s USING (settlement_id)
WHERE t.market_id = $1 AND t.seq > $2"""
_TXS = """
SELECT count(*) AS txs, sum(trade_count)::float8 AS trades, sum(cu_consumed)::float8 AS cu,
       sum(tx_bytes)::float8 AS bytes, sum(fee_lamports)::float8 AS fees,
       sum(batch_count)::float8 AS instructions
FROM settlements WHERE settlement_id IN (
    SELECT DISTINCT settlement_id FROM trades WHERE market_id = $1 AND seq > $2)"""
_SETTLED = """
SELECT count(*) FROM trades t JOIN settlements s USING (settlement_id)
WHERE t.market_id = $1 AND t.seq > $2 AND s.status IN ('confirmed', 'finalized')"""


@dataclass
class Figures:
    """One variant's run."""

    trades: int
    settled: int
    submit_s: float
    per_s: float
    drain_s: float
    p50_s: float
    p99_s: float
    cu: float
    bytes: float
    fees: float
    per_tx: float
    txs: int
    health: dict[str, Any]


async def _last_seq(conn: asyncpg.Connection, market: BenchMarket) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(seq), 0) FROM trades WHERE "
                                   "market_id = $1", market.market_id))  # fmt: skip


def _pairs(rng: random.Random, accounts: list[int], n: int) -> list[tuple[int, int, str, int]]:
    out = []
    for _ in range(n):
        maker, taker = rng.sample(accounts, 2)
        out.append((maker, taker, rng.choice(("buy", "sell")), rng.randint(1, 5)))
    return out


def _warm_pairs(accounts: list[int]) -> list[tuple[int, int, str, int]]:
    """Each account trades with the next, buying and selling: every vault moves."""
    n = len(accounts)
    return [(accounts[i], accounts[(i + 1) % n], side, 1)
            for i in range(n) for side in ("buy", "sell")]  # fmt: skip


async def _start_batcher(stack: Stack, market: BenchMarket, variant: Variant,
                         interval_s: float) -> Any:  # fmt: skip
    config = SettlementConfig(
        custody=stack.custody, markets=(market.symbol,), lookup_tables=variant.tables,
        batcher=BatcherConfig(netting=variant.netting, max_trades=variant.max_trades,
                              interval_s=interval_s, max_instructions=variant.max_instructions),
    )  # fmt: skip
    (batcher,) = start_settlement(config)

    async def ready() -> bool:
        health = await batcher.health.remote()
        return bool(health["markets"] == [market.symbol] and health["passes"] > 0)

    await wait_until("the batcher's first pass", ready, 60)
    return batcher


async def _stop_batcher(stack: Stack, batcher: Any) -> None:
    ray.kill(batcher, no_restart=True)

    async def gone() -> bool:
        try:
            ray.get_actor(settlement_actor_name(0), namespace=stack.namespace)
        except ValueError:
            return True
        return False

    await wait_until("the batcher's name to be freed", gone, 30)


async def run_variant(  # noqa: PLR0917 (what a run needs)
    stack: Stack, market: BenchMarket, variant: Variant, pairs: list[tuple[int, int, str, int]],
    interval_s: float, timeout_s: float, rate: float = 0.0,
) -> Figures:  # fmt: skip
    """Settle `pairs` as trades with one variant's batcher; return its figures."""
    conn = await asyncpg.connect(stack.url)
    try:
        after = await _last_seq(conn, market)
        batcher = await _start_batcher(stack, market, variant, interval_s)
        orders = trade_orders(pairs, f"{variant.key}{uuid.uuid4().hex[:6]}-")
        started = time.perf_counter()
        await submit(market, orders, rate)
        submit_s = time.perf_counter() - started

        async def settled() -> bool:
            count = await conn.fetchval(_SETTLED, market.market_id, after)
            return bool(count >= len(pairs))

        await wait_until(f"{len(pairs)} trades settled ({variant.label})", settled, timeout_s)
        health = await batcher.health.remote()
        await _stop_batcher(stack, batcher)
        run = await conn.fetchrow(_RUN, market.market_id, after)
        txs = await conn.fetchrow(_TXS, market.market_id, after)
    finally:
        await conn.close()
    count = int(txs["txs"] or 0)
    trades = float(txs["trades"] or 0) or 1.0
    return Figures(
        trades=int(run["trades"]), settled=int(run["confirmed"]), submit_s=submit_s,
        per_s=run["confirmed"] / run["span_s"] if run["span_s"] else 0.0,
        drain_s=run["drain_s"] or 0.0, p50_s=run["p50_s"] or 0.0, p99_s=run["p99_s"] or 0.0,
        cu=(txs["cu"] or 0.0) / trades, bytes=(txs["bytes"] or 0.0) / trades,
        fees=(txs["fees"] or 0.0) / trades, per_tx=trades / count if count else 0.0,
        txs=count, health=health,
    )  # fmt: skip


ROWS: tuple[tuple[str, str, str], ...] = (
    ("trades settled / s", "per_s", "{:,.1f}"),
    ("lag p50 (s)", "p50_s", "{:.2f}"),
    ("lag p99 (s)", "p99_s", "{:.2f}"),
    ("drain after last trade (s)", "drain_s", "{:.2f}"),
    ("trades / tx", "per_tx", "{:.1f}"),
    ("CU / trade", "cu", "{:,.0f}"),
    ("bytes / trade", "bytes", "{:.1f}"),
    ("fee lamports / trade", "fees", "{:,.0f}"),
    ("transactions", "txs", "{:,}"),
    ("trades submitted in (s)", "submit_s", "{:.2f}"),
)


def report(title: str, figures: dict[str, Figures]) -> None:
    """Print the variants side by side, then each one's ratio to seed 000's."""
    keys = [v.key for v in VARIANTS if v.key in figures]
    labels = {v.key: f"({v.key}) {v.label}" for v in VARIANTS}
    print(f"\n{title}")
    print(f"{'':26}" + "".join(f"{labels[k]:>18}" for k in keys))
    seed = figures.get(SEED.key)
    for name, attr, fmt in ROWS:
        cells = [fmt.format(getattr(figures[k], attr)) for k in keys]
        print(f"{name:26}" + "".join(f"{c:>18}" for c in cells))
        if seed is not None and attr not in ("submit_s", "txs", "drain_s"):
            base = getattr(seed, attr)
            ratios = [f"x{getattr(figures[k], attr) / base:.2f}" if base else "-" for k in keys]
            print(f"{'  / seed 000':26}" + "".join(f"{r:>18}" for r in ratios))
    for k in keys:
        h = figures[k].health
        print(f"({k}) {figures[k].settled}/{figures[k].trades} confirmed; batcher: sent "
              f"{h['sent']}, resent {h['resent']}, rebuilt {h['rebuilt']}, failures "
              f"{h['failures']}, failed {h['failed']}, blocked {h['blocked']}, cuts "
              f"{h['cuts']}, oversized {h['oversized']}, errors {h['errors']}")  # fmt: skip


async def run(args: argparse.Namespace, url: str, rpc_url: str, keys_dir: str,
              keys: ChainKeys) -> None:  # fmt: skip
    """Set the exchange up, then run the chosen variants for every mix of accounts."""
    chosen = [next(v for v in VARIANTS if v.key == key) for key in args.variants.split(",")]
    namespace = f"sbench-{uuid.uuid4().hex[:6]}"
    prefer_exchange_workers()
    ray.init(num_cpus=4, include_dashboard=False, namespace=namespace, log_to_driver=False)
    try:
        stack = await asyncio.to_thread(start_stack, url, rpc_url, namespace, keys, keys_dir)
        rng = random.Random(args.seed)
        for k in args.accounts:
            started = time.perf_counter()
            market = await open_market(stack, str(k), k)
            await pause_deposits(stack)
            print(f"\nmarket {market.symbol}: {k} accounts funded by {2 * k} credited "
                  f"deposits in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
            warm = _warm_pairs(market.accounts)
            figures = await run_variant(stack, market, chosen[0], warm, args.interval,
                                        args.timeout)  # fmt: skip
            print(
                f"warm-up ({len(warm)} trades, every vault once, ({chosen[0].key})): "
                f"{figures.per_s:.1f} trades/s, {figures.txs} transactions, oversized "
                f"{figures.health['oversized']}, failed {figures.health['failed']}",
                flush=True,
            )
            results: dict[str, Figures] = {}
            for variant in chosen:
                pairs = _pairs(rng, market.accounts, args.trades)
                results[variant.key] = await run_variant(
                    stack, market, variant, pairs, args.interval, args.timeout, args.rate
                )
                print(f"({variant.key}) {variant.label}: done", flush=True)
            offered = f"{args.rate:g} trades/s" if args.rate > 0 else "one burst"
            report(f"{args.trades:,} trades among {k} accounts, {offered} (slot {args.slot_ms} "
                   f"ms, batch interval {args.interval} s)", results)  # fmt: skip
    finally:
        ray.shutdown()


def main() -> None:
    """Parse options, start PostgreSQL and the chain, run the benchmark, clean up."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=2_000, help="trades per variant")
    parser.add_argument(
        "--accounts", default="20,200", help="comma-separated account counts: one market (mix) each"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="a batch closes this long after its first trade (s)",
    )
    parser.add_argument("--slot-ms", type=int, default=400, help="the chain's slot time")
    parser.add_argument("--timeout", type=float, default=900.0, help="s per variant, at most")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="trades offered per second; 0: all at once (a burst)",
    )
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--variants",
        default="a,b,c,d",
        help="variant keys to run, the first also warms up; e: (a) with 2 instructions",
    )
    args = parser.parse_args()  # fmt: skip
    args.accounts = [int(a) for a in args.accounts.split(",")]
    if not PROGRAM_SO.is_file():
        sys.exit(f"the exchange program is not built ({PROGRAM_SO}): run `make program`")
    data_dir = Path(tempfile.mkdtemp(prefix="clob-sbench-"))
    settings = Settings(data_dir=data_dir)
    services = ensure_services(settings)
    chain = EmbeddedChain(data_dir, slot_ms=args.slot_ms,
                          programs=[f"{PROGRAM_ID}={PROGRAM_SO}"])  # fmt: skip
    try:
        rpc_url = chain.start()
        keys = ChainKeys(Keypair(), Keypair(), Keypair(), Keypair())
        keys_dir = str(write_keys(data_dir / "keys", keys).resolve())
        url = asyncio.run(create_database(services.database_url, "sbench"))
        asyncio.run(run(args, url, rpc_url, keys_dir, keys))
    finally:
        chain.stop()
        if services.started:
            stop_embedded(settings)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
