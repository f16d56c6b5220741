"""A market pipeline over the in-memory fakes of its ports (`tests/support/fakes.py`):
the real `MarketCore`, `recover`, seam and consumers, without PostgreSQL or Ray.

Market T-Q: one tick and one lot are one atom each (`notional = price * qty`), maker fee
10 bps, taker fee 20 bps. Accounts 1 and 2 (one per ledger shard) hold 1,000 T and
100,000 Q each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.contracts import OrderRequest, OrderResult
from actors.engine import MarketSpec
from actors.market.consumers import market_consumers
from actors.market.core import MarketCore
from actors.market.ports import Ports
from actors.market.recovery import recover
from actors.market.seam import Consumer
from tests.support.fakes import Clock, MemoryLedger, MemoryStore
from tests.support.market_kit import limit, request

SPEC = MarketSpec(symbol="T-Q", base_asset="T", quote_asset="Q", maker_fee_bps=10, taker_fee_bps=20)
SELLER, BUYER = 1, 2
__all__ = ["BUYER", "SELLER", "SPEC", "Market", "limit", "request"]


class Market:
    """One market's stores and ledger, and its current incarnation (`core`).

    Args:
        extra: Consumers after the market's own (ledger, projection, tape).
        snapshot_every_events: Engine events between snapshots.
    """

    def __init__(
        self, extra: Sequence[Consumer] = (), snapshot_every_events: int = 1_000_000
    ) -> None:
        self.store = MemoryStore()
        self.ledger = MemoryLedger(SPEC, self.store)
        self.clock = Clock()
        self.extra = list(extra)
        self.snapshot_every_events = snapshot_every_events
        self._core: MarketCore | None = None
        for account in (SELLER, BUYER):
            self.ledger.fund(account, "T", 1_000)
            self.ledger.fund(account, "Q", 100_000)

    @property
    def core(self) -> MarketCore:
        """Return the running incarnation."""
        assert self._core is not None, "start() first"
        return self._core

    async def start(self) -> MarketCore:
        """Start (or restart: a new incarnation over the same stores) the market."""
        ports = Ports(self.store, self.store, self.store, self.ledger)
        consumers = [*market_consumers(SPEC, self.ledger, self.store), *self.extra]
        self._core = await recover(
            SPEC, ports, consumers, snapshot_every_events=self.snapshot_every_events,
            max_slippage_bps=500, holder="test", clock=self.clock,
        )  # fmt: skip
        return self._core

    async def submit(self, *requests: OrderRequest) -> list[OrderResult]:
        """Run one pass."""
        return await self.core.submit(list(requests))

    async def settled(self) -> None:
        """Wait for every consumer's work."""
        await self.core.settled()

    def balance(self, account: int, asset: str) -> tuple[int, int]:
        """Return (available, locked) of an account."""
        return self.ledger.shard(account).balance(account, asset)

    def payloads(self) -> list[dict[str, Any]]:
        """Return the journal's payloads, as stored."""
        return [row.payload for row in self.store.rows]
