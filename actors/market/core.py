"""`MarketCore`: the order pipeline of one market, without the Ray actor shell.

Pipeline of a batch (ARCHITECTURE.md, Trading core): dedupe and early rejects, reserve
per ledger shard in parallel (holds in the shards' memory), match, journal with each
command's reservation and hold epoch (one COPY: the commit point), then in the background
(each chained in journal order) the ledger apply per shard and the orders/trades
projection. Callers are answered at the journal commit; readers of balances and of the
orders and trades tables wait for what was journaled before them (`LedgerShard.balances`,
`serve_app.routes.db.projected`). A batch is cut
into segments where a command refers to an order an earlier command of the same segment
touched (its reservation depends on the state after that command). It is built by
`actors.market.recovery.recover`, the recovery path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from actors.contracts import (
    LedgerEntry,
    OrderRequest,
    OrderResult,
    Reservation,
    StaleMarketEpochError,
)
from actors.engine import Amend, Command, MarketSpec, MatchingEngine, NewOrder, OrderId
from actors.engine.codec import command_from_dict, event_to_dict
from actors.engine.events import Event
from actors.engine.validation import amend_malformed, new_order_malformed, new_order_param_error
from actors.market import reservations as resv
from actors.market import routing
from actors.market.journal import (
    FencedError,
    Journal,
    JournalRow,
    NewOrderRow,
    OrderUpdate,
    TradeRow,
    trade_dict,
)
from actors.market.ledger_client import LedgerClient
from actors.market.projection import Projection
from actors.market.state import (
    SNAPSHOT_FORMAT,
    Indexes,
    differs,
    encode_snapshot,
    result_of,
    reused,
)

JsonDict = dict[str, Any]
log = logging.getLogger(__name__)
RECENT_TRADES = 1_000
# Passes whose apply or projection may still be running when the next one starts matching.
MAX_TAILS_BEHIND = 2
# The early reject of an order or amend that could move more than `MAX_ATOMS` of an asset.
AMOUNT_TOO_LARGE = "amount_too_large"


# Wall seconds per pipeline stage. The ledger apply and the projection of a batch run in the
# background, overlapping the next batch, each chained to the batch before in its own chain:
# `tail_apply` and `tail_project` each count from the end of that batch before (or from the
# journal commit, if later); `tail` counts from the end of the batch before's tail to both.
_STAGES = ("reserve", "match", "encode", "journal", "tail", "tail_apply", "tail_project")


class JournalWriteError(RuntimeError):
    """The journal write failed for another reason than fencing: the state is unusable."""


class PassFailedError(JournalWriteError):
    """A pass failed before its journal commit for another reason than fencing (a shard
    out of reach past the deadline, a bug): its holds, and the engine's state if it
    matched, changed without a journal entry. Like a failed journal write, only a restart
    from the journal brings the market back in line (and releases the holds)."""


def now_ms() -> int:
    """Return the wall clock in milliseconds (the actor's only clock)."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Item:
    """One command going through the pipeline."""

    request_id: str
    account_id: int | None
    client_order_id: str | None
    cmd: JsonDict
    digest: str | None = None  # the new order's terms (`OrderRequest.digest`)
    result: OrderResult | None = None
    events: list[Event] = field(default_factory=list)
    # The reservation held for the command and (ledger shard, shard epoch) holding it.
    reservation: Reservation | None = None
    hold: tuple[int, int] | None = None
    # `cmd` decoded by the early checks, when it did not change after (else None).
    command: Command | None = None
    # Owners of the orders the command names, read from the engine before it ran.
    known: dict[str, int] = field(default_factory=dict)


class MarketCore:
    """One market's engine, journal and ledger calls.

    Args:
        spec: The market (its `status` is ignored: halts are journaled commands).
        journal: The market's journal (epoch already acquired by `recovery.recover`).
        ledger: The ledger shards.
        epoch: This incarnation's epoch.
        snapshot_every_events: Engine events between snapshots.
        max_slippage_bps: Protection of market buys by quantity, basis points.
        clock: Milliseconds now.
    """

    def __init__(
        self,
        spec: MarketSpec,
        journal: Journal,
        ledger: LedgerClient,
        epoch: int,
        *,
        snapshot_every_events: int,
        max_slippage_bps: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.spec = spec
        self.journal = journal
        self.ledger = ledger
        self.epoch = epoch
        self.engine = MatchingEngine(spec)
        self.seq = 0
        self.last_ts = 0
        self.cum: dict[str, int] = {}
        self.indexes = Indexes(100_000)
        self.trades: deque[JsonDict] = deque(maxlen=RECENT_TRADES)
        self.fenced = False
        self.snapshot_event_seq = 0
        self._snapshot_every = snapshot_every_events
        self._slippage = max_slippage_bps
        self._clock = clock
        self._snapshot_task: asyncio.Task[None] | None = None
        self.snapshot_journal: Journal | None = None
        self.projection_journal: Journal | None = None
        # The background completion of the last journaled batch (its callers are answered
        # at its journal commit), each chained to the batch before: `applied` its ledger
        # apply, `projected` its orders/trades projection, `tail` both (`settled`).
        self.applied: asyncio.Task[None] | None = None
        self.projected: asyncio.Task[None] | None = None
        self.tail: asyncio.Task[None] | None = None
        self.tails: deque[asyncio.Task[None]] = deque()  # the passes not known settled
        # Wall seconds spent in each pipeline stage since start (reported by `status`).
        self.stage_s: dict[str, float] = dict.fromkeys(_STAGES, 0.0)
        # Journal seq through which the ledger apply and the projection have completed
        # (`status`, the lag metrics); None until this incarnation's first pass, before
        # which recovery has applied and projected everything.
        self.applied_through: int | None = None
        self.projected_through: int | None = None

    # -- pipeline --------------------------------------------------------------------------

    async def submit(self, requests: list[OrderRequest]) -> list[OrderResult]:
        """Run a batch of trader requests through the pipeline; return each one's answer
        once the batch is journaled (the acknowledgement: the ledger apply and the
        projection follow, and readers wait for them)."""
        items: list[Item] = []
        first: dict[tuple[int, str], int] = {}
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
                    oid = earlier.cmd.get("id")
                    out.append(reused(req.request_id, oid if isinstance(oid, str) else None))
                else:
                    out.append(first[key])
            else:
                first[key] = len(items)
                out.append(len(items))
                cmd = dict(req.command, owner=str(req.account_id))
                items.append(
                    Item(req.request_id, req.account_id, req.client_order_id, cmd, req.digest)
                )
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
        """Reserve, match, journal and apply `items`; set each item's result.

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
        while self.tails and self.tails[0].done():
            self.tails.popleft().result()  # a failed pass raises here
        if len(self.tails) >= MAX_TAILS_BEHIND:
            # Overloaded: the applies or projections fall behind the journal. Wait for the
            # oldest before matching more, so the background work and the readers' waits
            # stay bounded (a failure raises here, before anything changed).
            await self.tails.popleft()
        ts = max(self.last_ts, self._clock())
        segment: list[Item] = []
        touched: set[str] = set()
        for item in items:
            item.cmd["ts"] = ts
            if self._breaks_segment(item.cmd, touched):
                await self._match_segment(segment)
                segment, touched = [], set()
            segment.append(item)
            touched.update(_refs(item.cmd))
        await self._match_segment(segment)
        self.last_ts = ts
        await self._commit([i for i in items if i.result is None])

    @staticmethod
    def _breaks_segment(cmd: JsonDict, touched: set[str]) -> bool:
        return any(r in touched for r in _deps(cmd))

    async def _match_segment(self, segment: list[Item]) -> None:
        if not segment:
            return
        wanted: list[tuple[Item, Reservation]] = []
        for item in segment:
            reservation = self._early(item)
            if reservation is not None and reservation.amount_atoms > 0:
                wanted.append((item, reservation))
        started = time.perf_counter()
        reservations = [r for _, r in wanted]
        try:
            holds = await self.ledger.reserve(reservations, self.epoch) if wanted else []
        except StaleMarketEpochError as exc:  # a newer incarnation released our holds
            self.fenced = True
            raise FencedError(f"market {self.spec.symbol} was taken over: {exc}") from exc
        reserved = time.perf_counter()
        for (item, r), hold in zip(wanted, holds, strict=True):
            if hold is None:
                item.result = OrderResult(item.request_id, ok=False, code="insufficient_funds")
            else:
                item.reservation = r
                item.hold = hold
        engine = self.engine
        for item in segment:
            if item.result is None:
                command = item.command or command_from_dict(item.cmd)
                item.known = routing.owners_before(engine, item.cmd)
                item.events = engine.submit(command)
        self.stage_s["reserve"] += reserved - started
        self.stage_s["match"] += time.perf_counter() - reserved

    def _early(self, item: Item) -> Reservation | None:
        """Reject what must never reach the engine; return the reservation needed, if any."""
        cmd = item.cmd
        kind = cmd.get("type")
        if item.account_id is None or kind not in ("new", "amend"):
            return None
        if kind == "amend":
            return self._amend_reservation(item, item.account_id)
        command = command_from_dict(cmd)
        code = self._new_reject(command)
        if code is not None:
            _refuse(item, code)
            return None
        set_by_trader = cmd.get("quote_qty") is not None
        budget = resv.protect(cmd, self.engine.best_ask(), self._slippage)
        if resv.new_order_too_large(self.spec, cmd, budget):
            _refuse(item, AMOUNT_TOO_LARGE)  # not journaled: `cmd` may keep the budget
            return None
        if budget is None or set_by_trader:
            item.command = command  # unchanged: the engine takes it as decoded
        return resv.for_new(self.spec, item.account_id, cmd, budget)

    def _new_reject(self, command: object) -> str | None:
        if not isinstance(command, NewOrder) or new_order_malformed(command):
            return "invalid_command"
        if self.engine.halted:
            return "market_halted"
        if self.engine.get_order(command.id) is not None:
            return "duplicate_id"
        reason = new_order_param_error(command, self.spec)
        return None if reason is None else reason.value

    def _amend_reservation(self, item: Item, account_id: int) -> Reservation | None:
        cmd = item.cmd
        command = command_from_dict(cmd)
        oid = cmd.get("id")
        if not isinstance(oid, str) or not isinstance(command, Amend):
            return None
        if amend_malformed(command):
            return None  # the engine rejects it, with its own code
        view = self.engine.get_order(OrderId(oid))
        if view is None or view.owner != str(account_id):
            return None
        if resv.amend_too_large(self.spec, cmd, view):
            _refuse(item, AMOUNT_TOO_LARGE)
            return None
        return resv.for_amend(self.spec, account_id, cmd, view, self._slippage)

    async def _commit(self, items: list[Item]) -> None:
        """Journal the matched items in one transaction; start their projection and apply.

        The journal commit is the acknowledgement point. The ledger apply is sent to the
        shards right after it, so they see it before this market's next reservations; the
        apply (`applied`) and the orders/trades projection (`projected`) then complete in
        the background, overlapped with the next batch, each in journal order.
        """
        if not items:
            return
        if self.applied_through is None or self.projected_through is None:
            self.applied_through = self.projected_through = self.seq
        started = time.perf_counter()
        projection = Projection(self.spec, self.cum)
        rows: list[JournalRow] = []
        entries: list[LedgerEntry] = []
        concerned: list[set[int] | None] = []
        seq = self.seq
        for item in items:
            seq += 1
            events = [event_to_dict(e) for e in item.events]
            projection.add(
                item.account_id, item.client_order_id, item.cmd, item.events, item.digest
            )
            payload = {
                "request_id": item.request_id,
                "account_id": item.account_id,
                "client_order_id": item.client_order_id,
                "command": item.cmd,
                "events": events,
            }
            if item.digest is not None:
                payload["digest"] = item.digest
            held = None if item.reservation is None else item.reservation.to_dict()
            if held is not None:
                payload["reservation"] = held
            rows.append(JournalRow(seq, str(item.cmd.get("type")), payload, item.hold))
            entries.append((seq, events, held))
            concerned.append(routing.entry_accounts(events, item.reservation, item.known))
            item.result = result_of(item.request_id, seq, item.cmd, events)
        updates = projection.finish(self.engine)
        encoded = time.perf_counter()
        await self._append(rows)
        journaled = time.perf_counter()
        self.stage_s["encode"] += encoded - started
        self.stage_s["journal"] += journaled - encoded
        self.seq = seq
        applied = self.ledger.start_apply(self.spec.symbol, entries, concerned)
        for item in items:
            assert item.result is not None
            self.indexes.remember(item.account_id, item.client_order_id, item.result, item.digest)
        for t in projection.trades:
            self.trades.append(trade_dict(_trade_map(t)))
        self.applied = asyncio.create_task(self._apply(self.applied, applied, seq))
        self.projected = asyncio.create_task(
            self._project(self.projected, seq, updates, projection.trades)
        )
        self.tail = asyncio.create_task(self._settle(self.tail, self.applied, self.projected))
        self.tails.append(self.tail)
        self.maybe_snapshot()

    async def _apply(
        self, previous: asyncio.Task[None] | None, applied: Awaitable[None], seq: int
    ) -> None:
        """Wait for a journaled batch's ledger apply (through `seq`), after the batch
        before's."""
        if previous is not None:
            await previous
        started = time.perf_counter()
        try:
            await applied
        except Exception as exc:
            # A shard that missed entries must catch up from the journal before it sees
            # later ones: restart, and recovery makes every shard `sync`.
            raise JournalWriteError(f"ledger apply failed: {exc!r}") from exc
        self.stage_s["tail_apply"] += time.perf_counter() - started
        self.applied_through = seq

    async def _project(
        self,
        previous: asyncio.Task[None] | None,
        seq: int,
        updates: list[NewOrderRow | OrderUpdate],
        trades: list[TradeRow],
    ) -> None:
        """Write a journaled batch's orders/trades projection, after the batch before's."""
        if previous is not None:
            await previous
        started = time.perf_counter()
        journal = self.projection_journal or self.journal
        try:
            await journal.project(self.epoch, seq, updates, trades)
        except FencedError:
            self.fenced = True
            raise
        except Exception as exc:
            raise JournalWriteError(f"projection write failed: {exc!r}") from exc
        self.stage_s["tail_project"] += time.perf_counter() - started
        self.projected_through = seq

    async def _settle(
        self,
        previous: asyncio.Task[None] | None,
        applied: asyncio.Task[None],
        projected: asyncio.Task[None],
    ) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):  # it failed: so do `applied` or `projected`
                await previous
        started = time.perf_counter()
        await asyncio.gather(applied, projected)
        self.stage_s["tail"] += time.perf_counter() - started

    def lag(self) -> tuple[int, int]:
        """Return how many journal entries await their ledger apply, and their projection."""
        applied = self.seq if self.applied_through is None else self.applied_through
        projected = self.seq if self.projected_through is None else self.projected_through
        return self.seq - applied, self.seq - projected

    async def settled(self) -> None:
        """Wait until every journaled batch is applied to the ledger and projected."""
        if self.tail is not None:
            await self.tail

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
        args = (self.seq, self.engine.seq, dump, self.last_ts, dict(self.cum))
        self._snapshot_task = asyncio.create_task(self._save_snapshot(*args))

    async def _save_snapshot(
        self, seq: int, event_seq: int, dump: JsonDict, last_ts: int, cum: dict[str, int]
    ) -> None:
        state = await asyncio.to_thread(encode_snapshot, dump, last_ts, cum)
        journal = self.snapshot_journal or self.journal
        try:
            await journal.save_snapshot(self.epoch, seq, event_seq, state, SNAPSHOT_FORMAT)
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
        """Return whether a GTD order or stop may expire now (cheap: the heap's top)."""
        heap = self.engine._expiry  # The engine's GTD heap; its top is the next expiry.
        return bool(heap) and heap[0][0] <= max(self.last_ts, self._clock())

    async def admin(self, kind: str) -> OrderResult:
        """Journal an operator command (`halt`, `resume`, `tick`) like any other."""
        item = Item(f"{kind}:{self.seq + 1}:{self._clock()}", None, None, {"type": kind})
        await self.run([item])
        await self.settled()
        assert item.result is not None
        return item.result


def _trade_map(t: Any) -> JsonDict:
    return {
        "seq": t.seq,
        "maker_order_id": t.maker_order_id,
        "taker_order_id": t.taker_order_id,
        "taker_side": t.taker_side,
        "price_ticks": t.price_ticks,
        "qty_lots": t.qty_lots,
        "ts": t.executed_at_ms,
    }


_BOOK = "\x00book"


def _refs(cmd: JsonDict) -> list[str]:
    """Return what a command changes: its order id (or `owner:X`), and the book."""
    if cmd.get("type") == "cancel_all":
        return [f"owner:{cmd.get('owner')}", _BOOK]
    oid = cmd.get("id")
    return [oid, _BOOK] if isinstance(oid, str) else [_BOOK]


def _deps(cmd: JsonDict) -> list[str]:
    """Return what a command's early checks and reservation read from the engine."""
    if resv.needs_book(cmd):
        return [_BOOK]
    kind = cmd.get("type")
    oid = cmd.get("id")
    if kind == "new" and isinstance(oid, str):
        return [oid]
    if kind == "amend" and isinstance(oid, str):
        return [oid, f"owner:{cmd.get('owner')}"]
    return []


def _refuse(item: Item, code: str) -> None:
    """Answer an item with an early reject: it changes nothing and is not journaled."""
    oid = item.cmd.get("id")
    item.result = OrderResult(
        item.request_id, ok=False, code=code, order_id=oid if isinstance(oid, str) else None
    )


def _as_duplicate(result: OrderResult) -> OrderResult:
    return dataclasses.replace(result, duplicate=True)
