"""The batcher's pass over in-memory fakes of its ports: batches are created once, sent,
re-sent, rebuilt, retried with a doubled fee after 2, 4 and 8 s, given up after the third
retry, and confirmed and finalized, with each change published; a new batcher over the
same records resumes where the old one stopped."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from actors.accounts import AccountId
from actors.chain.records import ChainUnavailableError
from actors.settlement.batcher import Batcher, BatcherConfig
from actors.settlement.cut import instructions_of
from actors.settlement.monitor import Seen
from actors.settlement.planner import BatchPlan
from actors.settlement.ports import MarketInfo, Prepared, Refused, StatusChange
from actors.settlement.records import AttemptRow, MarketState, SettlementJob
from actors.settlement.states import SettlementStatus, check
from actors.settlement.trades import SettleTrade, VaultKey

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
        keep, rest = trades[: len(trades) // 2], trades[len(trades) // 2 :]
        self.jobs[settlement_id] = dataclasses.replace(
            job, trade_count=len(keep), instructions=instructions_of(keep, True)
        )
        new = len(self.jobs) + 1
        self.jobs[new] = dataclasses.replace(
            job, settlement_id=new, batch_id=self.next_batch, trade_count=len(rest),
            instructions=instructions_of(rest, True))  # fmt: skip
        self.next_batch += 1
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
                      ) -> Prepared | Refused:  # fmt: skip
        if self.prepare_errors:
            self.prepare_errors -= 1
            raise ChainUnavailableError("node is unhealthy")
        if self.refuse is not None:
            return Refused(self.refuse)
        self.prepared += 1
        self.fees.append(cu_price)
        signature = f"sig{job.settlement_id}-{self.prepared}"
        return Prepared(signature, signature.encode(), self.height + VALID_FOR, 20_000, cu_price,
                        15_000, 600)  # fmt: skip

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


def test_a_batch_is_created_sent_confirmed_and_finalized() -> None:
    batcher, store, chain, publisher, _, _ = make(interval_s=60.0)
    store.trades = [trade(1), trade(2), trade(3)]

    async def go() -> None:
        await passes(batcher)
        await batcher.flush()
        await passes(batcher)
        (job,) = store.jobs.values()
        assert job.trade_count == 3 and job.status == "submitted" and store.mark == 3
        chain.deepen("confirmed")
        await passes(batcher)
        assert store.jobs[1].status == "confirmed"
        chain.deepen("finalized")
        await passes(batcher)
        assert store.jobs[1].status == "finalized"

    run(go())
    assert [c[1] for c in publisher.changes] == ["submitted", "confirmed", "finalized"]
    assert publisher.changes[0][2] == {1: [1, 2, 3], 2: [1, 2, 3]}
    assert len(chain.sent) == 1 and store.fields[1]["fee_lamports"] == 5_000 + 20


def test_a_dropped_transaction_is_resent_then_rebuilt_without_counting() -> None:
    batcher, store, chain, _, clock, _ = make()
    store.trades = [trade(1)]
    chain.drop = 3

    async def go() -> None:
        await passes(batcher, 2)  # created; sent (dropped)
        await passes(batcher)  # not a second yet: nothing
        assert len(chain.sent) == 1
        clock.now += 1.0
        await passes(batcher)  # resent, same bytes (dropped again)
        assert chain.sent == [b"sig1-1", b"sig1-1"]
        chain.height += VALID_FOR + 1  # the blockhash expired
        await passes(batcher)  # rebuilt: a new attempt (dropped)
        clock.now += 1.0
        await passes(batcher)  # resent: lands
        chain.deepen("confirmed")
        await passes(batcher)

    run(go())
    assert chain.sent == [b"sig1-1", b"sig1-1", b"sig1-2", b"sig1-2"]
    assert store.jobs[1].status == "confirmed" and store.jobs[1].retries == 0
    assert batcher.stats.failures == 0 and batcher.stats.rebuilt == 1


def test_failures_are_retried_after_2_4_8_s_with_a_doubled_fee_then_given_up() -> None:
    batcher, store, chain, publisher, clock, alerts = make(base_fee=1_000)
    store.trades = [trade(1)]
    chain.land_error = ["SomeError"] * 4

    async def go() -> None:
        await passes(batcher, 2)
        for pause in (2.0, 4.0, 8.0):
            await passes(batcher)  # the landed failure is counted
            job = store.jobs[1]
            assert job.next_try_at == pytest.approx(clock.now + pause)
            clock.now += pause - 0.5
            await passes(batcher)
            assert chain.prepared == job.retries  # not yet
            clock.now += 0.5
            await passes(batcher)  # the retry goes
        chain.height += VALID_FOR + 1  # nothing can land any more
        await passes(batcher)

    run(go())
    assert chain.fees == [1_000, 2_000, 4_000, 8_000]
    assert store.jobs[1].status == "failed" and alerts == [1]
    assert publisher.changes[-1][1] == "failed"
    assert all(row.status == "error" for row in store.rows[1])


def test_a_late_landing_of_an_earlier_attempt_wins() -> None:
    batcher, store, chain, _, clock, _ = make()
    store.trades = [trade(1)]
    chain.send_errors = 1  # the node errs, yet the transaction got through

    async def go() -> None:
        await passes(batcher, 2)
        assert store.jobs[1].retries == 1 and store.rows[1][0].status == "error"
        chain.seen["sig1-1"] = Seen(9, "confirmed")  # it landed after all
        clock.now += 2.0
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "confirmed" and chain.prepared == 1


def test_a_blocked_simulation_waits_uncounted() -> None:
    batcher, store, chain, _, clock, alerts = make()
    store.trades = [trade(1)]
    chain.refuse = "InsufficientVaultBalance"

    async def go() -> None:
        await passes(batcher, 10)  # simulated once: the next is 0.1 s away
        assert store.jobs[1].status == "pending" and store.jobs[1].retries == 0
        for pause in (0.1, 0.2, 0.4):  # then after a pause that doubles
            clock.now += pause - 0.01
            await passes(batcher)
            clock.now += 0.01
            await passes(batcher)
        chain.refuse = None
        clock.now += 0.8
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "submitted" and batcher.stats.blocked == 4 and not alerts


def test_a_batch_blocked_too_long_is_cut_until_it_can_pay() -> None:
    batcher, store, chain, _, clock, _ = make(interval_s=60.0, cut_after_s=3.0)
    store.trades = [trade(s) for s in range(1, 5)]
    chain.refuse = "InsufficientVaultBalance"

    async def go() -> None:
        await passes(batcher)
        await batcher.flush()
        await passes(batcher)  # blocked since now
        clock.now += 2.9
        await passes(batcher)
        assert len(store.jobs) == 1  # not yet
        clock.now += 0.2
        await passes(batcher)  # cut: 2 + 2
        assert [store.trade_ids[i] for i in sorted(store.jobs)] == [[1, 2], [3, 4]]
        await passes(batcher)  # both wait from now
        clock.now += 3.1
        await passes(batcher)  # each cut again: one trade each
        chain.refuse = None
        await passes(batcher, 2)
        chain.deepen("finalized")
        await passes(batcher, 2)

    run(go())
    assert sorted(t for ids in store.trade_ids.values() for t in ids) == [1, 2, 3, 4]
    assert len(store.jobs) == 4 and batcher.stats.cuts == 3
    assert {j.status for j in store.jobs.values()} == {"finalized"}
    assert batcher.stats.failures == 0


def test_a_never_sent_settlement_counts_its_failures_and_is_given_up_after_the_last() -> None:
    # A simulation refused for good (or an RPC error before the send) leaves the settlement
    # pending: its failures are counted as a sent one's are, with the same backoff.
    batcher, store, chain, publisher, clock, alerts = make()
    store.trades = [trade(1)]
    chain.refuse = "InvalidVault"

    async def go() -> None:
        await passes(batcher, 3)  # created, refused: failure 1; then within its backoff
        assert store.jobs[1].status == "pending" and store.jobs[1].retries == 1
        assert store.jobs[1].next_try_at == clock.now + 2.0
        for pause in (2.0, 4.0, 8.0):
            clock.now += pause
            await passes(batcher, 2)

    run(go())
    assert store.jobs[1].status == "failed" and alerts == [1] and not chain.sent
    assert batcher.stats.failures == 3 and batcher.stats.failed == 1
    assert store.fields[1]["last_error"] == "simulation: InvalidVault"
    assert [c[1] for c in publisher.changes] == ["failed"]


def test_an_rpc_error_before_the_first_send_is_retried_with_a_doubled_fee() -> None:
    batcher, store, chain, _, clock, _ = make()
    store.trades = [trade(1)]
    chain.prepare_errors = 1

    async def go() -> None:
        await passes(batcher, 2)
        assert store.jobs[1].status == "pending" and store.jobs[1].retries == 1
        clock.now += 2.0
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "submitted" and chain.fees == [2_000]


def test_at_most_max_in_flight_are_submitted() -> None:
    batcher, store, chain, _, _, _ = make(max_trades=1, max_in_flight=2)
    store.trades = [trade(s) for s in range(1, 6)]
    chain.drop = 100

    async def go() -> None:
        await passes(batcher, 3)

    run(go())
    statuses = [j.status for j in sorted(store.jobs.values(), key=lambda j: j.batch_id)]
    assert statuses == ["submitted", "submitted", "pending", "pending", "pending"]


def test_a_new_batcher_resumes_from_the_records() -> None:
    batcher, store, chain, _, _, _ = make(max_trades=2, interval_s=60.0)
    store.trades = [trade(s) for s in range(1, 4)]
    chain.drop = 1

    async def go() -> None:
        await passes(batcher, 1)  # batch 1 (trades 1-2) created; trade 3 in the open batch
        assert store.mark == 2 and len(store.jobs) == 1
        await passes(batcher, 1)  # batch 1 sent (dropped)
        # A restart: the open batch was in memory only; its trade is read again.
        again, *_ = make(store, chain, max_trades=2, interval_s=60.0)
        await again.run_pass([MARKET])  # re-sends batch 1's bytes at once (it lands)
        assert chain.sent == [b"sig1-1", b"sig1-1"]
        await again.flush()  # closes trade 3's batch
        await passes(again, 2)
        chain.deepen("finalized")
        await passes(again, 2)

    run(go())
    assert sorted(t for ids in store.trade_ids.values() for t in ids) == [1, 2, 3]
    assert {j.status for j in store.jobs.values()} == {"finalized"}
    assert store.floor_raised == [0, 0]


def test_a_blockhash_stale_at_the_simulation_is_no_failure() -> None:
    batcher, store, chain, _, _, _ = make()
    store.trades = [trade(1)]
    chain.refuse = "TransactionErrorFieldless.BlockhashNotFound"

    async def go() -> None:
        await passes(batcher, 3)
        assert store.jobs[1].retries == 0 and batcher.stats.failures == 0
        chain.refuse = None
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "submitted"
