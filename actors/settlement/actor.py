"""The settlement batchers: `settlement:<i>` Ray actors, each settling the markets whose id
is `i` modulo the number of batchers (`batcher.py` has the pass).

Like the custody actors, each is a short shell around its pass, run in a loop started by
the constructor, so that Ray's restart of a killed batcher (the constructor again) is also
its recovery: the pass reads its marks, its settlements and their attempts from
PostgreSQL, and the chain answers for each attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import ray
from ray.exceptions import RayActorError
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient, ChainError
from actors.chain.keys import ROLE_ENV, load_keys
from actors.chain.program import chain_market_id, market_pda, program_id_from
from actors.custody.actor import CHAIN_ACTOR, CustodyConfig
from actors.settlement.batcher import Batcher
from actors.settlement.chain import RpcSettleChain
from actors.settlement.config import BatcherConfig
from actors.settlement.pg import PgSettlementStore, StreamPublisher
from actors.settlement.ports import MarketInfo
from actors.settlement.records import SettlementJob
from actors.settlement.tables import MarketTables
from actors.stream.sink import RedisSink

log = logging.getLogger(__name__)

SETTLEMENT_ACTOR = "settlement:{index}"
MARKETS_EVERY_S = 5.0


def settlement_actor_name(index: int) -> str:
    """Return the name of batcher `index`."""
    return SETTLEMENT_ACTOR.format(index=index)


@dataclass(frozen=True)
class SettlementConfig:
    """What the batchers need (no secrets: keys are read from files).

    Attributes:
        custody: The chain, keys, database and namespace (shared with custody).
        redis_url: Where status changes are published (None: not published).
        batchers: How many batchers share the markets.
        batcher: The batching and sending rules.
        poll_s: Pause between passes.
        lookup_tables: Compile settle transactions against a lookup table per market.
        markets: Settle only these markets (symbols); empty: every market.
    """

    custody: CustodyConfig
    redis_url: str | None = None
    batchers: int = 1
    batcher: BatcherConfig = field(default_factory=BatcherConfig)
    poll_s: float = 0.1
    lookup_tables: bool = True
    markets: tuple[str, ...] = ()


class SettlementActor:
    """`settlement:<index>`: one batcher (see the module doc).

    Args:
        config: The configuration.
        index: Which batcher this is (0 .. batchers - 1).
    """

    def __init__(self, config: SettlementConfig, index: int) -> None:
        self.config, self.index = config, index
        custody = config.custody
        self.program_id: Pubkey = program_id_from(custody.program_id or None)
        environ = {ROLE_ENV[role]: path for role, path in custody.key_paths.items()}
        self.keys = load_keys(Path(custody.keys_dir), environ)
        self.client = ChainClient(custody.rpc_url)
        self.sink = None if config.redis_url is None else RedisSink(config.redis_url)
        self.store = PgSettlementStore(custody.database_url)
        tables = None
        if config.lookup_tables:
            store = self.store
            tables = MarketTables(self.client, self.keys.payer, self.keys.operator,
                                  store.table_address, store.save_table_address)  # fmt: skip
        self.chain = RpcSettleChain(self.client, self.program_id, self.keys.operator,
                                    self.store.record_vault, tables)  # fmt: skip
        self.batcher = Batcher(self.store, self.chain, StreamPublisher(self.sink),
                               config=config.batcher, fits_for=self.chain.fits,
                               alert=self._alert)  # fmt: skip
        self.passes = 0
        self.errors = 0
        self.last_error: str | None = None
        self.markets: list[MarketInfo] = []
        self._markets_at = 0.0
        self._on_chain: set[int] = set()
        self._failed_metric: Any = None
        self.lock = asyncio.Lock()
        self._task = asyncio.get_event_loop().create_task(self._loop())

    def _alert(self, job: SettlementJob, error: str) -> None:
        """Count a settlement given up in a Ray metric (the log line is the batcher's)."""
        if self._failed_metric is None:
            from ray.util.metrics import Counter

            self._failed_metric = Counter("clob_settlements_failed_total",
                                          "Settlements given up after their last retry.",
                                          tag_keys=("market",))  # fmt: skip
        with contextlib.suppress(Exception):  # a metric never stops settlement
            self._failed_metric.inc(1, tags={"market": str(job.market_id)})

    async def _loop(self) -> None:
        while True:
            try:
                async with self.lock:
                    await self.run_pass()
                self.passes += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a pass must not end the loop
                if not isinstance(exc, ChainError | OSError | asyncpg.PostgresError):
                    log.exception("settlement batcher %d: pass failed", self.index)
                self.errors += 1
                self.last_error = repr(exc)[:500]
                self.batcher.reset()
                await self.store.close()
            await asyncio.sleep(self.config.poll_s)

    async def run_pass(self) -> None:
        """Refresh the markets now and then, then run the batcher's pass."""
        if time.monotonic() - self._markets_at > MARKETS_EVERY_S:
            self.markets = await self._load_markets()
            self._markets_at = time.monotonic()
        await self.batcher.run_pass(self.markets)

    async def _load_markets(self) -> list[MarketInfo]:
        rows = await self.store.markets(self.config.batchers, self.index)
        markets = []
        for market_id, symbol, base_mint, quote_mint in rows:
            if self.config.markets and symbol not in self.config.markets:
                continue
            base, quote = Pubkey.from_string(base_mint), Pubkey.from_string(quote_mint)
            info = MarketInfo(market_id, symbol, chain_market_id(base, quote), base_mint,
                              quote_mint)  # fmt: skip
            if await self._ensure_on_chain(info):
                markets.append(info)
        return markets

    async def _ensure_on_chain(self, market: MarketInfo) -> bool:
        """Tell whether the market's config is on chain, asking the custody chain actor to
        make it (its sync) when it is not."""
        if market.market_id in self._on_chain:
            return True
        pda = market_pda(self.program_id, market.chain_market_id)
        if await self.client.account_data(pda, "confirmed") is None:
            try:
                chain: Any = ray.get_actor(CHAIN_ACTOR, namespace=self.config.custody.namespace)
                await chain.sync.remote()
            except (ValueError, RayActorError) as exc:
                log.info("market %s is not on chain yet: %r", market.symbol, exc)
                return False
            if await self.client.account_data(pda, "confirmed") is None:
                return False
        self._on_chain.add(market.market_id)
        return True

    async def flush(self) -> int:
        """Close every open batch now (tests and benchmarks; the interval does it anyway);
        return how many were closed."""
        async with self.lock:
            return await self.batcher.flush()

    async def health(self) -> dict[str, Any]:
        """Return the batcher's passes, errors, counts and markets."""
        stats = self.batcher.stats
        return {"name": settlement_actor_name(self.index), "passes": self.passes,
                "errors": self.errors, "last_error": self.last_error,
                "markets": [m.symbol for m in self.markets],
                "trades": stats.trades, "created": stats.created, "sent": stats.sent,
                "resent": stats.resent, "rebuilt": stats.rebuilt, "failures": stats.failures,
                "confirmed": stats.confirmed, "finalized": stats.finalized,
                "failed": stats.failed, "failed_ids": list(stats.failed_ids[-20:]),
                "blocked": stats.blocked, "cuts": stats.cuts, "oversized": stats.oversized,
                "last_settlement_error": stats.last_error}  # fmt: skip


def settlement_actor_options(index: int, namespace: str) -> dict[str, Any]:
    """Return the `.options(...)` of batcher `index` (named, detached, restarted forever)."""
    return {"name": settlement_actor_name(index), "namespace": namespace,
            "lifetime": "detached", "max_restarts": -1, "max_task_retries": 0,
            "num_cpus": 0, "get_if_exists": True}  # fmt: skip


def start_settlement(config: SettlementConfig) -> list[Any]:
    """Get or create every batcher (call after `ray.init`); return their handles."""
    return [
        ray.remote(SettlementActor).options(
            **settlement_actor_options(i, config.custody.namespace)).remote(config, i)
        for i in range(config.batchers)
    ]  # fmt: skip
