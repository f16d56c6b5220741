"""In-memory fakes of the batcher's ports (the settlement records, the chain, the stream)
and a clock, shared by the batcher's unit tests."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from actors.accounts import AccountId
from actors.chain.records import ChainUnavailableError
from actors.settlement.batcher import Batcher, vault_keys
from actors.settlement.config import BatcherConfig
from actors.settlement.cut import instructions_of, split
from actors.settlement.monitor import Seen
from actors.settlement.planner import BatchPlan
from actors.settlement.ports import MarketInfo, Oversized, Prepared, Refused, StatusChange
from actors.settlement.records import AttemptRow, MarketState, SettlementJob
from actors.settlement.states import SettlementStatus, check
from actors.settlement.trades import SettleTrade, VaultKey
from actors.settlement.tx import MAX_TX_BYTES

MARKET = MarketInfo(1, "SOL-USDC", 77, "base-mint", "quote-mint")
VALID_FOR = 150  # blocks a blockhash stays valid


def trade(seq: int, maker: int = 1, taker: int = 2) -> SettleTrade:
    return SettleTrade(seq, AccountId(maker), AccountId(taker), "buy", 1_000, 50_000, 5, 10,
                       seq * 1_000)  # fmt: skip


class FakeStore:
    """The settlement records in memory, with the same guards as `records.py`."""

    def __init__(self) -> None:
        self.trades: list[SettleTrade] = []
        self.mark = 0
        self.next_batch = 1
        self.jobs: dict[int, SettlementJob] = {}
        self.trade_ids: dict[int, list[int]] = {}
        self.rows: dict[int, list[AttemptRow]] = {}
        self.fields: dict[int, dict[str, Any]] = {}
        self.floor_raised: list[int] = []

    async def market_state(self, market_id: int, chain_market_id: int) -> MarketState:
        return MarketState(self.mark, self.next_batch, chain_market_id)

    async def raise_batch_floor(self, market_id: int, floor: int) -> None:
        self.floor_raised.append(floor)
        self.next_batch = max(self.next_batch, floor + 1)

    async def trades_after(self, market_id: int, after_seq: int, limit: int) -> list[SettleTrade]:
        return [t for t in self.trades if t.seq > after_seq][:limit]

    async def create(self, market_id: int, plan: BatchPlan, netted: bool) -> SettlementJob:
        assert plan.first_seq > self.mark, "a trade settled twice"
        sid = len(self.jobs) + 1
        job = SettlementJob(sid, market_id, MARKET.chain_market_id, self.next_batch,
                            len(plan.instructions), SettlementStatus.PENDING,
                            plan.instructions, len(plan.trades), 0, None, 0,
                            plan.trades[0].executed_at_ms)  # fmt: skip
        self.next_batch += len(plan.instructions)
        self.mark = plan.last_seq
        self.jobs[sid] = job
        self.trade_ids[sid] = [t.seq for t in plan.trades]
        self.rows[sid] = []
        return job

    async def unfinished(self, market_ids: Sequence[int]) -> list[SettlementJob]:
        live = ("pending", "submitted", "confirmed")
        return sorted((j for j in self.jobs.values() if j.status in live),
                      key=lambda j: j.batch_id)  # fmt: skip

    async def attempts(self, settlement_id: int) -> list[AttemptRow]:
        return list(self.rows[settlement_id])

    async def add_attempt(self, settlement_id: int, tx: Prepared) -> int:
        assert 1 <= tx.tx_bytes <= MAX_TX_BYTES  # the table's CHECK
        rows = self.rows[settlement_id]
        rows.append(AttemptRow(len(rows) + 1, tx.signature, tx.wire, tx.cu_price, tx.cu_limit,
                               tx.last_valid_height, "sent", None,
                               datetime.now(UTC)))  # fmt: skip
        self.jobs[settlement_id] = dataclasses.replace(self.jobs[settlement_id],
                                                       signature=tx.signature)  # fmt: skip
        return len(rows)

    async def attempt_failed(self, settlement_id: int, attempt: int, error: str) -> None:
        rows = self.rows[settlement_id]
        rows[attempt - 1] = dataclasses.replace(rows[attempt - 1], status="error", error=error)

    async def transition(self, settlement_id: int, old: str, new: str, **fields: Any) -> bool:
        check(old, new)
        job = self.jobs[settlement_id]
        if job.status != old:
            return False
        changes: dict[str, Any] = {"status": SettlementStatus(new)}
        for name in ("retries", "next_try_at", "signature", "slot"):
            if name in fields:
                changes[name] = fields[name]
        self.jobs[settlement_id] = dataclasses.replace(job, **changes)
        self.fields.setdefault(settlement_id, {}).update(fields)
        return True

    async def accounts_of(self, settlement_id: int) -> dict[int, list[int]]:
        return {1: self.trade_ids[settlement_id], 2: self.trade_ids[settlement_id]}

    async def cut(self, settlement_id: int) -> int | None:
        job, seqs = self.jobs[settlement_id], self.trade_ids[settlement_id]
        if job.status != "pending" or self.rows[settlement_id] or len(seqs) < 2:
            return None
        trades = [t for t in self.trades if t.seq in seqs]
        at = split(trades, True)
        keep, rest = trades[:at], trades[at:]
        self.jobs[settlement_id] = dataclasses.replace(
            job, trade_count=len(keep), instructions=instructions_of(keep, True)
        )
        new, moved = len(self.jobs) + 1, instructions_of(rest, True)
        self.jobs[new] = dataclasses.replace(
            job, settlement_id=new, batch_id=self.next_batch, trade_count=len(rest),
            batch_count=len(moved), instructions=moved)  # fmt: skip
        self.next_batch += len(moved)
        self.trade_ids[settlement_id] = [t.seq for t in keep]
        self.trade_ids[new], self.rows[new] = [t.seq for t in rest], []
        return new


class FakeChain:
    """A chain that lands what it is sent unless told otherwise."""

    def __init__(self) -> None:
        self.height = 1_000
        self.sent: list[bytes] = []
        self.seen: dict[str, Seen] = {}
        self.drop = 0  # sends that vanish
        self.land_error: list[str] = []  # errors the next landings carry
        self.send_errors = 0
        self.refuse: str | None = None
        self.prepare_errors = 0  # RPC errors while preparing
        self.prepared = 0
        self.fees: list[int] = []
        self.bytes_per_vault = 0  # a transaction's size: 600 bytes plus this per vault
        self.flag_oversized = True  # prepare answers Oversized (False: a Prepared that big)

    async def block_height(self) -> int:
        return self.height

    async def statuses(self, signatures: Sequence[str]) -> Mapping[str, Seen | None]:
        return {s: self.seen.get(s) for s in signatures}

    async def applied_floor(self, market: MarketInfo) -> int:
        return 0

    async def open_market(self, market: MarketInfo) -> None:
        return None

    async def ensure_vaults(self, market: MarketInfo, keys: Sequence[VaultKey]) -> None:
        return None

    async def prepare(self, market: MarketInfo, job: SettlementJob, cu_price: int
                      ) -> Prepared | Refused | Oversized:  # fmt: skip
        if self.prepare_errors:
            self.prepare_errors -= 1
            raise ChainUnavailableError("node is unhealthy")
        if self.refuse is not None:
            return Refused(self.refuse)
        size = 600 + self.bytes_per_vault * len(vault_keys(job))
        if size > MAX_TX_BYTES and self.flag_oversized:
            return Oversized(size)
        self.prepared += 1
        self.fees.append(cu_price)
        signature = f"sig{job.settlement_id}-{self.prepared}"
        return Prepared(signature, signature.encode(), self.height + VALID_FOR, 20_000, cu_price,
                        15_000, size)  # fmt: skip

    async def send(self, wire: bytes) -> None:
        self.sent.append(wire)
        if self.send_errors:
            self.send_errors -= 1
            raise ChainUnavailableError("node is unhealthy")
        if self.drop:
            self.drop -= 1
            return
        signature = wire.decode()
        if signature not in self.seen:
            error = self.land_error.pop(0) if self.land_error else None
            self.seen[signature] = Seen(5, "processed", error)

    def deepen(self, commitment: str) -> None:
        for signature, seen in self.seen.items():
            self.seen[signature] = dataclasses.replace(seen, commitment=commitment)  # type: ignore[arg-type]


class FakePublisher:
    def __init__(self) -> None:
        self.changes: list[tuple[int, str, dict[int, list[int]]]] = []

    def publish(self, market: MarketInfo, job: SettlementJob, change: StatusChange,
                accounts: Mapping[int, list[int]]) -> None:  # fmt: skip
        self.changes.append((job.settlement_id, change.status, dict(accounts)))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def make(store: FakeStore | None = None, chain: FakeChain | None = None, **config: Any
         ) -> tuple[Batcher, FakeStore, FakeChain, FakePublisher, Clock, list[int]]:  # fmt: skip
    store, chain = store or FakeStore(), chain or FakeChain()
    publisher, clock, alerts = FakePublisher(), Clock(), []
    batcher = Batcher(store, chain, publisher,
                      config=BatcherConfig(**{"interval_s": 1e-9, **config}),
                      fits_for=lambda market: lambda vault_sets: True, clock=clock,
                      alert=lambda job, error: alerts.append(job.settlement_id))  # fmt: skip
    return batcher, store, chain, publisher, clock, alerts


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def passes(batcher: Batcher, n: int = 1) -> None:
    for _ in range(n):
        await batcher.run_pass([MARKET])
