"""`MarketCore`: the order pipeline of one market, pure of Ray and of PostgreSQL.

Pipeline of a batch (docs/pipeline.md): dedupe and early rejects, reserve per ledger shard
in parallel (holds in the shards' memory), match, journal with each command's reservation
and hold epoch (the commit point), then hand the committed batch to the consumers
(`seam.py`): the ledger apply and the orders/trades projection complete in the background,
each in journal order, and the callers are answered at the journal commit. A batch is cut
into segments where a command refers to an order an earlier command of the same segment
touched (its reservation depends on the state after that command).

The core depends only on its ports (`ports.py`: journal, snapshots, ledger, clock) and its
consumers; `recovery.recover` builds it, and `actor.MarketActor` wires the real adapters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence

from actors.accounts import AccountId
from actors.contracts import (
    OrderRequest,
    OrderResult,
    PlaceOrder,
    Reservation,
    StaleMarketEpochError,
)
from actors.engine import (
    Amend,
    MarketSpec,
    MatchingEngine,
    Millis,
    NewOrder,
    OrderId,
)
from actors.engine.validation import amend_malformed, new_order_malformed, new_order_param_error
from actors.journal_codec import encode_payload
from actors.ledger.fees import FeeCounts
from actors.market import reservations as resv
from actors.market import routing
from actors.market.intake import Item, engine_command, journal_kind, refuse, segment_keys
from actors.market.ports import (
    Clock,
    FencedError,
    JournalWriteError,
    PassFailedError,
    Ports,
)
from actors.market.rows import JournalRow, JsonDict
from actors.market.seam import (
    MAX_TAILS_BEHIND,
    CommittedBatch,
    CommittedEntry,
    Consumer,
    Seam,
    committed_entry,
)
from actors.market.state import (
    SNAPSHOT_FORMAT,
    Indexes,
    differs,
    encode_snapshot,
    result_of,
    reused,
)

__all__ = [
    "MAX_TAILS_BEHIND",
    "JournalWriteError",
    "MarketCore",
    "PassFailedError",
    "now_ms",
]

log = logging.getLogger(__name__)
# The early reject of an order or amend that could move more than `MAX_ATOMS` of an asset.
AMOUNT_TOO_LARGE = "amount_too_large"
# Wall seconds per pipeline stage; the consumers add theirs (`tail_apply`, `tail_project`,
# each counted from the end of the batch before's, and `tail`, both of a batch).
_STAGES = ("reserve", "match", "encode", "journal", "tail", "tail_apply", "tail_project")


def now_ms() -> int:
    """Return the wall clock in milliseconds (the actor's clock)."""
    return time.time_ns() // 1_000_000


class MarketCore:
    """One market's engine, journal, ledger calls and consumers of committed batches.

    Args:
        spec: The market (its `status` is ignored: halts are journaled commands).
        ports: The journal (epoch already acquired by `recovery.recover`), the snapshot
            store (written in the background) and the ledger; the projection store is
            the consumers'.
        consumers: The consumers of committed batches, in delivery order.
        epoch: This incarnation's epoch.
        snapshot_every_events: Engine events between snapshots.
        max_slippage_bps: Protection of market buys by quantity, basis points.
        clock: Milliseconds now.
    """

    def __init__(
        self,
        spec: MarketSpec,
        ports: Ports,
        consumers: Sequence[Consumer],
        epoch: int,
        *,
        snapshot_every_events: int,
        max_slippage_bps: int,
        clock: Clock = now_ms,
    ) -> None:
        self.spec = spec
        self.journal = ports.journal
        self.snapshots = ports.snapshots
        self.ledger = ports.ledger
        self.epoch = epoch
        self.engine = MatchingEngine(spec)
        self.seq = 0
        self.last_ts = 0
        self.fees = FeeCounts()  # live orders' fee numerators (`actors.ledger.fees`)
        self.indexes = Indexes(100_000)
        self.fenced = False
        self.snapshot_event_seq = 0
        self._snapshot_every = snapshot_every_events
        self._slippage = max_slippage_bps
        self._clock = clock
        self._snapshot_task: asyncio.Task[None] | None = None
        # Wall seconds spent in each pipeline stage since start (reported by `status`).
        self.stage_s: dict[str, float] = dict.fromkeys(_STAGES, 0.0)
        self.seam = Seam(consumers, self.stage_s, self._fence)

    def _fence(self) -> None:
        self.fenced = True

    # -- pipeline --------------------------------------------------------------------------

    async def submit(self, requests: list[OrderRequest]) -> list[OrderResult]:
        """Run a batch of trader requests through the pipeline; return each one's answer
        once the batch is journaled (the acknowledgement: the ledger apply and the
        projection follow, and readers wait for them)."""
        items: list[Item] = []
        first: dict[tuple[AccountId, str], int] = {}
        out: list[OrderResult | int] = []
        for req in requests:
            key = (req.account_id, req.request_id)
            dup = self.indexes.duplicate(
                req.account_id, req.request_id, req.client_order_id, req.digest
            )
            if dup is not None:
                out.append(dup)
            elif key in first:
                earlier = items[first[key]]
                if differs(earlier.digest, req.digest):
                    oid = getattr(earlier.request, "id", None)
                    out.append(reused(req.request_id, oid if isinstance(oid, str) else None))
                else:
                    out.append(first[key])
            else:
                first[key] = len(items)
                out.append(len(items))
                items.append(
                    Item(req.request_id, req.account_id, req.client_order_id, req.command,
                         req.digest)
                )  # fmt: skip
        await self.run(items)
        answers: list[OrderResult] = []
        seen: set[int] = set()
        for slot in out:
            if isinstance(slot, OrderResult):
                answers.append(slot)
                continue
            result = items[slot].result
            assert result is not None
            answers.append(result if slot not in seen else _as_duplicate(result))
            seen.add(slot)
        return answers

    async def run(self, items: list[Item]) -> None:
        """Reserve, match, journal and deliver `items`; set each item's result.

        Raises:
            FencedError: A newer incarnation took the market over.
            JournalWriteError: The pass failed otherwise (`PassFailedError` before its
                journal commit): the market must restart from its journal.
        """
        if self.fenced:
            raise FencedError(f"market {self.spec.symbol} was taken over by a newer epoch")
        try:
            await self._run(items)
        except (FencedError, JournalWriteError):
            raise
        except Exception as exc:
            raise PassFailedError(f"pass failed before its journal commit: {exc!r}") from exc

    async def _run(self, items: list[Item]) -> None:
        # Overloaded: the consumers fall behind the journal. Wait for the oldest batch before
        # matching more, so their work and the readers' waits stay bounded (a failure
        # raises here, before anything changed).
        await self.seam.bounded()
        ts = Millis(max(self.last_ts, self._clock()))
        segment: list[Item] = []
        touched: set[str] = set()
        for item in items:
            item.command = engine_command(item, ts)
            changes, reads = segment_keys(item.command)
            if any(r in touched for r in reads):
                await self._match_segment(segment)
                segment, touched = [], set()
            segment.append(item)
            touched.update(changes)
        await self._match_segment(segment)
        self.last_ts = ts
        await self._commit([i for i in items if i.result is None])

    async def _match_segment(self, segment: list[Item]) -> None:
        if not segment:
            return
        wanted: list[tuple[Item, Reservation]] = []
        for item in segment:
            reservation = self._early(item)
            if reservation is not None and reservation.amount_atoms > 0:
                wanted.append((item, reservation))
        started = time.perf_counter()
        try:
            holds = await self.ledger.reserve([r for _, r in wanted], self.epoch) if wanted else []
        except StaleMarketEpochError as exc:  # a newer incarnation released our holds
            self.fenced = True
            raise FencedError(f"market {self.spec.symbol} was taken over: {exc}") from exc
        reserved = time.perf_counter()
        for (item, r), hold in zip(wanted, holds, strict=True):
            if hold is None:
                refuse(item, "insufficient_funds")
            else:
                item.reservation, item.hold = r, hold
        engine = self.engine
        for item in segment:
            if item.result is None:
                item.owners = routing.owners_before(engine, item.command)
                item.events = engine.submit(item.command)
        self.stage_s["reserve"] += reserved - started
        self.stage_s["match"] += time.perf_counter() - reserved

    def _early(self, item: Item) -> Reservation | None:
        """Reject what must never reach the engine; return the reservation needed, if any."""
        if item.account_id is None:
            return None
        command = item.command
        if isinstance(command, Amend):
            return self._amend_reservation(item, command, item.account_id)
        if type(item.request) is not PlaceOrder:
            return None
        if not isinstance(command, NewOrder) or new_order_malformed(command):
            refuse(item, "invalid_command")
            return None
        code = self._new_reject(command)
        if code is not None:
            refuse(item, code)
            return None
        item.command, budget = resv.protect(command, self.engine.best_ask(), self._slippage)
        if resv.new_order_too_large(self.spec, item.command, budget):
            refuse(item, AMOUNT_TOO_LARGE)  # not journaled
            return None
        return resv.for_new(self.spec, item.account_id, item.command, budget)

    def _new_reject(self, command: NewOrder) -> str | None:
        if self.engine.halted:
            return "market_halted"
        if self.engine.get_order(command.id) is not None:
            return "duplicate_id"
        reason = new_order_param_error(command, self.spec)
        return None if reason is None else reason.value

    def _amend_reservation(
        self, item: Item, command: Amend, account_id: AccountId
    ) -> Reservation | None:
        if amend_malformed(command):
            return None  # the engine rejects it, with its own code
        view = self.engine.get_order(OrderId(command.id))
        if view is None or view.owner != command.owner:
            return None
        if resv.amend_too_large(self.spec, command, view):
            refuse(item, AMOUNT_TOO_LARGE)
            return None
        return resv.for_amend(self.spec, account_id, command, view, self._slippage)

    async def _commit(self, items: list[Item]) -> None:
        """Journal the matched items in one transaction, then deliver them to the consumers.

        The journal commit is the acknowledgement point. The consumers get the batch right
        after it, before the next batch starts: the ledger apply is sent to the shards
        then, so they see it before this market's next reservations.
        """
        if not items:
            return
        started = time.perf_counter()
        rows: list[JournalRow] = []
        entries: list[CommittedEntry] = []
        seq = self.seq
        for item in items:
            seq += 1
            events = tuple(item.events)
            rows.append(JournalRow(seq, journal_kind(item), encode_payload(
                item.request_id, item.account_id, item.client_order_id, item.command, events,
                item.reservation, item.digest,
            ), item.hold))  # fmt: skip
            entries.append(committed_entry((
                seq, item.request_id, item.account_id, item.client_order_id, item.digest,
                item.command, events, self.fees.charge_events(self.spec, events),
                item.reservation, item.owners,
            )))  # fmt: skip
            item.result = result_of(item.request_id, seq, item.command, events)
        self.fees.prune(self.is_live)
        encoded = time.perf_counter()
        await self._append(rows)
        journaled = time.perf_counter()
        first_seq, self.seq = self.seq + 1, seq
        self.seam.deliver(
            CommittedBatch(self.spec.symbol, self.epoch, first_seq, seq, tuple(entries)),
            self.engine,
        )
        for item in items:
            assert item.result is not None
            self.indexes.remember(item.account_id, item.client_order_id, item.result, item.digest)
        self.stage_s["encode"] += encoded - started + time.perf_counter() - journaled
        self.stage_s["journal"] += journaled - encoded
        self.maybe_snapshot()

    def is_live(self, order_id: str) -> bool:
        """Return whether an order rests in the book or waits as a stop."""
        return self.engine.get_order(OrderId(order_id)) is not None

    def lag(self) -> tuple[int, int]:
        """Return how many journal entries await their ledger apply, and their projection."""
        lags = self.seam.lag(self.seq)
        return lags.get("ledger", 0), lags.get("projection", 0)

    async def settled(self) -> None:
        """Wait until every journaled batch is applied to the ledger and projected."""
        await self.seam.settled()

    async def _append(self, rows: list[JournalRow]) -> None:
        try:
            await self.journal.append(self.epoch, rows)
        except FencedError:
            self.fenced = True
            raise
        except Exception as exc:
            raise JournalWriteError(f"journal append failed: {exc!r}") from exc

    # -- snapshots -------------------------------------------------------------------------

    def maybe_snapshot(self) -> None:
        """Start a background snapshot when enough events passed since the last one."""
        if self.engine.seq - self.snapshot_event_seq < self._snapshot_every:
            return
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return
        self.snapshot_event_seq = self.engine.seq
        dump = self.engine.dump()  # Taken between batches: consistent with self.seq.
        args = (self.seq, self.engine.seq, dump, self.last_ts, self.fees.as_dict())
        self._snapshot_task = asyncio.create_task(self._save_snapshot(*args))

    async def _save_snapshot(
        self, seq: int, event_seq: int, dump: JsonDict, last_ts: int, fees: dict[str, int]
    ) -> None:
        state = await asyncio.to_thread(encode_snapshot, dump, last_ts, fees)
        try:
            await self.snapshots.save_snapshot(self.epoch, seq, event_seq, state, SNAPSHOT_FORMAT)
        except FencedError:
            self.fenced = True
        except Exception:
            log.exception("snapshot of %s at seq %d failed", self.spec.symbol, seq)

    async def wait_snapshot(self) -> None:
        """Wait for the snapshot in flight, if any."""
        if self._snapshot_task is not None:
            await self._snapshot_task

    # -- time ------------------------------------------------------------------------------

    def expiry_due(self) -> bool:
        """Return whether a GTD order or stop may expire now."""
        due = self.engine.next_expiry()
        return due is not None and due <= max(self.last_ts, self._clock())

    async def admin(self, kind: str) -> OrderResult:
        """Journal an operator command (`halt`, `resume`, `tick`) like any other."""
        item = Item(f"{kind}:{self.seq + 1}:{self._clock()}", None, None, kind)
        await self.run([item])
        await self.settled()
        assert item.result is not None
        return item.result


def _as_duplicate(result: OrderResult) -> OrderResult:
    return dataclasses.replace(result, duplicate=True)
