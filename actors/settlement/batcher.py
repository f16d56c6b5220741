"""The settlement batcher's pass: take the markets' new trades, close them into batches,
and put each batch on chain exactly once.

One pass, per market of the batcher:

1. **Intake.** The trades after the market's mark (trades with a higher seq than any
   settlement holds; the projection writes them, in seq order, from the journal) go into
   the market's `Planner`; every batch it closes becomes a `pending` settlement, in one
   transaction that also assigns its trades and raises the mark (`records.create`). The
   planner's open batch lives in memory only: after a restart its trades are read again.
2. **Submit and watch**, the settlements in batch-id order, at most `max_in_flight`
   submitted per market (the program's replay window must never slide past an unsent
   id): a pending one is simulated (its compute-unit limit comes from the simulation),
   its attempt recorded, then sent; a submitted one follows `monitor.decide`; a confirmed
   one is watched until finalized.
3. **Publish** every status change to the accounts of the batch's trades.

A simulation refused with `InsufficientVaultBalance` is not a failure: another market's
batch that pays one of these vaults has not landed yet (each market settles in its own
order), so the batch waits, uncounted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from actors.chain.records import ChainError
from actors.settlement.config import BatcherConfig, BatcherStats
from actors.settlement.monitor import (
    MAX_RETRIES,
    AttemptState,
    Landed,
    Rebuild,
    Resend,
    Retry,
    Unknown,
    backoff_s,
    decide,
    fee_of,
)
from actors.settlement.planner import Planner
from actors.settlement.ports import (
    MarketInfo,
    Oversized,
    Publisher,
    Refused,
    SettleChain,
    SettlementStore,
    StatusChange,
)
from actors.settlement.records import AttemptRow, SettlementJob
from actors.settlement.trades import VaultKey
from actors.settlement.tx import MAX_TX_BYTES

log = logging.getLogger(__name__)

BLOCKED = "InsufficientVaultBalance"
BLOCKED_PAUSE_MAX_S = 5.0
STALE_BLOCKHASH = "BlockhashNotFound"
Fits = Callable[[Sequence[Sequence[VaultKey]]], bool]


def vault_keys(job: SettlementJob) -> list[VaultKey]:
    """Return the distinct vaults of a settlement's instructions, in order."""
    seen: dict[VaultKey, None] = {}
    for instruction in job.instructions:
        for key, _ in instruction:
            seen.setdefault(key, None)
    return list(seen)


class Batcher:
    """Runs passes over the ports (see the module doc).

    Args:
        store: The settlement records.
        chain: The chain.
        publisher: The accounts' stream.
        config: The batching and sending rules.
        fits_for: The byte check of a market's transactions (`tx.tx_size`).
        clock: Wall-clock seconds (the records' times).
        alert: Called with a settlement given up (the actor counts a metric).
    """

    def __init__(
        self, store: SettlementStore, chain: SettleChain, publisher: Publisher, *,
        config: BatcherConfig, fits_for: Callable[[MarketInfo], Fits],
        clock: Callable[[], float] = time.time,
        alert: Callable[[SettlementJob, str], None] | None = None,
    ) -> None:  # fmt: skip
        self._store, self._chain, self._publisher = store, chain, publisher
        self._config, self._fits_for, self._clock = config, fits_for, clock
        self._alert = alert
        self.stats = BatcherStats()
        self._planners: dict[int, Planner] = {}
        self._taken: dict[int, int] = {}  # per market: the last trade seq given to its planner
        self._sent_at: dict[str, float] = {}  # signature -> last send (memory only)
        self._blocked: dict[int, float] = {}  # settlement -> since when it waits for funds
        self._blocked_until: dict[int, float] = {}  # ... and when it is simulated again
        self._blocked_times: dict[int, int] = {}
        self._floors: set[int] = set()  # markets whose batch ids were raised past the chain's
        self._pending_publish: list[tuple[MarketInfo, SettlementJob, StatusChange]] = []

    def reset(self) -> None:
        """Forget what lives only in memory (after a failed pass): the next pass reads the
        trades after each market's durable mark again."""
        self._planners.clear()
        self._taken.clear()
        self._pending_publish.clear()

    async def run_pass(self, markets: Sequence[MarketInfo]) -> None:
        """Advance every market of the batcher by one step."""
        by_id = {m.market_id: m for m in markets}
        for market in markets:
            await self._intake(market)
        in_flight: dict[int, int] = {}
        jobs = await self._store.unfinished(list(by_id))
        for job in jobs:
            if job.status == "submitted":
                in_flight[job.market_id] = in_flight.get(job.market_id, 0) + 1
        for job in jobs:
            market = by_id[job.market_id]
            if job.status == "pending":
                if in_flight.get(job.market_id, 0) >= self._config.max_in_flight:
                    continue
                if job.next_try_at is not None and self._clock() < job.next_try_at:
                    continue
                if self._clock() < self._blocked_until.get(job.settlement_id, 0.0):
                    continue
                if await self._submit(market, job):
                    in_flight[job.market_id] = in_flight.get(job.market_id, 0) + 1
            elif job.status == "submitted":
                await self._watch(market, job)
            elif job.status == "confirmed":
                await self._finalize(market, job)
        await self.flush_publish()
        self._forget_old_sends()

    def _forget_old_sends(self) -> None:
        """Drop send times no blockhash can still need (a validator's is valid ~80 s)."""
        if len(self._sent_at) > 1_000:
            horizon = self._clock() - 600.0
            self._sent_at = {s: t for s, t in self._sent_at.items() if t >= horizon}

    # -- intake -------------------------------------------------------------------------

    async def _intake(self, market: MarketInfo) -> None:
        mid = market.market_id
        if mid not in self._floors:
            floor = await self._chain.applied_floor(market)
            await self._store.raise_batch_floor(mid, floor)
            self._floors.add(mid)
        planner = self._planners.get(mid)
        if planner is None:
            await self._chain.open_market(market)
            state = await self._store.market_state(mid, market.chain_market_id)
            planner = Planner(netting=self._config.netting, max_trades=self._config.max_trades,
                              interval_s=self._config.interval_s, fits=self._fits_for(market),
                              max_instructions=self._config.max_instructions)  # fmt: skip
            self._planners[mid] = planner
            self._taken[mid] = state.mark_seq
        trades = await self._store.trades_after(mid, self._taken[mid], self._config.intake_limit)
        for trade in trades:
            for plan in planner.add(trade):
                await self._store.create(mid, plan, self._config.netting)
                self.stats.created += 1
            self._taken[mid] = trade.seq
        self.stats.trades += len(trades)
        due = planner.due()
        if due is not None:
            await self._store.create(mid, due, self._config.netting)
            self.stats.created += 1

    async def flush(self) -> int:
        """Close every market's open batch now; return how many were closed."""
        closed = 0
        for mid, planner in self._planners.items():
            plan = planner.flush()
            if plan is not None:
                await self._store.create(mid, plan, self._config.netting)
                self.stats.created += 1
                closed += 1
        return closed

    # -- sending ------------------------------------------------------------------------

    async def _submit(self, market: MarketInfo, job: SettlementJob) -> bool:
        """Build, record and send a new attempt; return whether one was sent."""
        try:
            await self._chain.ensure_vaults(market, vault_keys(job))
            prepared = await self._chain.prepare(market, job, fee_of(self._config.base_fee,
                                                                     job.retries))  # fmt: skip
        except ChainError as exc:
            await self._count_failure(market, job, f"simulation: {exc!r}"[:500], [])
            return False
        if isinstance(prepared, Refused):
            if prepared.error == BLOCKED:
                await self._blocked_wait(job)
                return False
            if STALE_BLOCKHASH in prepared.error:  # expired between fetch and simulation
                return False  # the next pass takes a new one; nothing was refused
            await self._count_failure(market, job, f"simulation: {prepared.error}", [])
            return False
        if isinstance(prepared, Oversized) or prepared.tx_bytes > MAX_TX_BYTES:
            await self._oversized(market, job, prepared.tx_bytes)  # never recorded nor sent
            return False
        self._unblock(job.settlement_id)
        attempt = await self._store.add_attempt(job.settlement_id, prepared)
        await self._store.transition(job.settlement_id, job.status, "submitted",
                                     cu_consumed=prepared.cu_consumed)  # fmt: skip
        if job.status == "pending":
            self._publish(market, job, "submitted", prepared.signature, None)
        self._sent_at[prepared.signature] = self._clock()
        self.stats.sent += 1
        try:
            await self._chain.send(prepared.wire)
        except ChainError as exc:
            error = f"send: {exc!r}"[:500]
            await self._store.attempt_failed(job.settlement_id, attempt, error)
            moved = await self._count_failure(market, job, error, [], status="submitted")
            return not moved
        return True

    async def _blocked_wait(self, job: SettlementJob) -> None:
        """A batch whose vaults cannot pay yet waits, uncounted; one that has waited
        `cut_after_s` is cut in two (`cut.py` says why: two markets' batches may wait on
        each other)."""
        self.stats.blocked += 1
        sid = job.settlement_id
        since = self._blocked.setdefault(sid, self._clock())
        times = self._blocked_times[sid] = self._blocked_times.get(sid, 0) + 1
        # Simulated again after 0.1, 0.2, 0.4 ... s, at most every 5 s: a batch that never
        # pays (e.g. funds credited off chain on embedded defaults) costs the chain little.
        self._blocked_until[sid] = self._clock() + min(BLOCKED_PAUSE_MAX_S, 0.05 * 2**times)
        if self._clock() - since < self._config.cut_after_s or job.trade_count < 2:
            return
        new_id = await self._store.cut(sid)
        self._unblock(sid)
        if new_id is not None:
            self.stats.cuts += 1
            log.info("settlement %d waited %.1f s for its vaults' funds: its second half is "
                     "settlement %d", job.settlement_id, self._clock() - since, new_id)  # fmt: skip

    async def _oversized(self, market: MarketInfo, job: SettlementJob, tx_bytes: int) -> None:
        """Never record or send a transaction over `MAX_TX_BYTES`: cut its settlement in
        two, as a blocked one is, down to single trades; the other settlements go on."""
        self.stats.oversized += 1
        sid, error = job.settlement_id, f"oversized: {tx_bytes} bytes, over {MAX_TX_BYTES}"
        new_id = await self._store.cut(sid)
        if new_id is not None:
            self.stats.cuts += 1
            self._unblock(sid)
            log.warning("settlement %d: %s: its second half is settlement %d", sid, error, new_id)
        elif job.trade_count > 1 or job.status != "pending":  # not cut once it has attempts
            await self._count_failure(market, job, error, [])
        else:
            log.error("settlement %d: %s with one trade, which names at most 5 vaults: a bug",
                      sid, error)  # fmt: skip
            await self._give_up(market, job, error, job.status)

    def _unblock(self, settlement_id: int) -> None:
        self._blocked.pop(settlement_id, None)
        self._blocked_until.pop(settlement_id, None)
        self._blocked_times.pop(settlement_id, None)

    async def _watch(self, market: MarketInfo, job: SettlementJob) -> None:
        attempts = await self._store.attempts(job.settlement_id)
        if not attempts:  # recorded as submitted, but its attempt was never written
            await self._submit(market, job)
            return
        states = [AttemptState(a.signature, a.last_valid_block_height or 0,
                               self._sent_at.get(a.signature, 0.0), a.status == "error")
                  for a in attempts]  # fmt: skip
        seen = await self._chain.statuses([a.signature for a in attempts])
        height = await self._chain.block_height()
        decision = decide(states, seen, height=height, now=self._clock(),
                          next_try_at=job.next_try_at, resend_s=self._config.resend_s)  # fmt: skip
        if isinstance(decision, Landed):
            if decision.commitment == "processed":
                return
            landed = next(a for a in attempts if a.signature == decision.signature)
            await self._confirmed(market, job, landed, decision.slot)
            if decision.commitment == "finalized":
                await self._finalized(market, job, decision.signature, decision.slot)
        elif isinstance(decision, Resend):
            wire = next(a.wire for a in attempts if a.signature == decision.signature)
            self._sent_at[decision.signature] = self._clock()
            if wire is None:  # recorded without its bytes (a row from before 0021): rebuild
                await self._submit(market, job)
                return
            try:
                await self._chain.send(wire)
                self.stats.resent += 1
            except ChainError as exc:  # the node did not take it: the next pass tries again
                log.info("settlement %d: resend failed: %r", job.settlement_id, exc)
        elif isinstance(decision, Rebuild):
            self.stats.rebuilt += 1
            await self._submit(market, job)
        elif isinstance(decision, Retry):
            attempt = next(a for a in attempts if a.signature == decision.signature)
            if await self._count_failure(market, job, decision.error, attempts, height=height,
                                         status="submitted", attempt=attempt):  # fmt: skip
                return
        elif isinstance(decision, Unknown):
            await self._give_up(market, job, "batch id applied on chain by an unknown "
                                "transaction (BatchAlreadyApplied)", "submitted")  # fmt: skip

    async def _count_failure(
        self, market: MarketInfo, job: SettlementJob, error: str, attempts: Sequence[AttemptRow],
        *, height: int | None = None, status: str | None = None, attempt: AttemptRow | None = None,
    ) -> bool:  # fmt: skip
        """Count a failed submission: schedule its retry, or give the settlement up after
        the last one; return whether it was given up."""
        status = status or job.status
        retries = job.retries + 1
        if retries > MAX_RETRIES:
            if height is not None and any(
                a.status != "error"
                and height <= (a.last_valid_block_height or 0)
                and a is not attempt
                for a in attempts
            ):
                return False  # an attempt may still land: decide once it cannot
            if attempt is not None:
                await self._store.attempt_failed(job.settlement_id, attempt.attempt, error)
            await self._give_up(market, job, error, status)
            return True
        self.stats.failures += 1
        if attempt is not None:
            await self._store.attempt_failed(job.settlement_id, attempt.attempt, error)
        log.warning("settlement %d: failed submission %d of %d: %s", job.settlement_id,
                    retries, MAX_RETRIES + 1, error)  # fmt: skip
        await self._store.transition(job.settlement_id, status, status, retries=retries,
                                     next_try_at=self._clock() + backoff_s(retries),
                                     last_error=error)  # fmt: skip
        return False

    async def _give_up(
        self, market: MarketInfo, job: SettlementJob, error: str, status: str
    ) -> None:
        self.stats.failed += 1
        self.stats.failed_ids = [*self.stats.failed_ids[-99:], job.settlement_id]
        self.stats.last_error = error
        log.error("settlement %d of %s FAILED after %d retries: %s (an operator must look: "
                  "POST /api/v1/admin/settlements/%d/retry)", job.settlement_id, market.symbol,
                  MAX_RETRIES, error, job.settlement_id)  # fmt: skip
        await self._store.transition(job.settlement_id, status, "failed", last_error=error,
                                     alerted=True)  # fmt: skip
        if self._alert is not None:
            self._alert(job, error)
        self._publish(market, job, "failed", None, None)

    # -- landing ------------------------------------------------------------------------

    async def _confirmed(
        self, market: MarketInfo, job: SettlementJob, landed: AttemptRow, slot: int
    ) -> None:
        # What the landed transaction paid: 5,000 lamports for its one signature plus its
        # priority fee, price x limit in micro-lamports, rounded up.
        limit = landed.cu_limit or 0
        fee = 5_000 + -(-landed.priority_fee_micro_lamports * limit // 1_000_000)
        await self._store.transition(job.settlement_id, "submitted", "confirmed",
                                     signature=landed.signature, slot=slot, fee_lamports=fee,
                                     priority_fee_micro_lamports=landed.priority_fee_micro_lamports,
                                     cu_limit=landed.cu_limit)  # fmt: skip
        self.stats.confirmed += 1
        self._publish(market, job, "confirmed", landed.signature, slot)

    async def _finalize(self, market: MarketInfo, job: SettlementJob) -> None:
        if job.signature is None:
            return
        seen = (await self._chain.statuses([job.signature])).get(job.signature)
        if seen is not None and seen.error is None and seen.commitment == "finalized":
            await self._finalized(market, job, job.signature, seen.slot)

    async def _finalized(self, market: MarketInfo, job: SettlementJob, signature: str,
                         slot: int) -> None:  # fmt: skip
        await self._store.transition(job.settlement_id, "confirmed", "finalized")
        self.stats.finalized += 1
        self._publish(market, job, "finalized", signature, slot)

    def _publish(self, market: MarketInfo, job: SettlementJob, status: str,
                 signature: str | None, slot: int | None) -> None:  # fmt: skip
        self._pending_publish.append((market, job, StatusChange(status, signature, slot)))

    async def flush_publish(self) -> None:
        """Publish the status changes of the pass (one read of each batch's accounts)."""
        pending, self._pending_publish = self._pending_publish, []
        for market, job, change in pending:
            accounts = await self._store.accounts_of(job.settlement_id)
            self._publisher.publish(market, job, change, accounts)
