"""The seam for committed events: how a market hands each journaled batch to its consumers.

Contract (docs/pipeline.md says the same for readers outside the code):

- **When and what.** Right after a batch's journal transaction commits, and before its
  callers are answered, the market calls `committed(batch, book)` on every consumer, in
  the order they were given, once per batch. The batch carries the market, the epoch that
  journaled it, its seq range `[first_seq, last_seq]` (gap-free, following the previous
  batch's) and one `CommittedEntry` per journal entry: the typed command, events and fees.
  `book` answers queries about the book as it is after the batch, during the call only.
- **The call is synchronous and must be quick.** Do there what must happen in journal
  order before the next batch starts (the ledger apply is *sent* there, so a shard gets it
  before the market's next reservations); return a `Finish`, a coroutine function, for
  the rest, or None.
- **Durable consumers** (`durable = True`: the ledger apply, the orders/trades
  projection) keep their own high-water mark where they store their output. The seam runs
  each one's finishes in journal order, one after the other; a pass starts matching only
  when at most `MAX_TAILS_BEHIND` passes still have a finish running, so a slow consumer
  slows the market instead of letting the lag grow. A failed finish restarts the market
  (`JournalWriteError`; `FencedError` when a newer incarnation took over). On every start
  `recover` asks each for `high_water()` and hands it the journaled entries after it, in
  one batch, before the market serves; a consumer that reads the journal itself (the
  ledger shards) answers None and catches up in `ready()` instead.
- **At least once.** Within one incarnation each batch is delivered once, in journal
  order; across a restart, whatever a consumer had not recorded under its mark comes
  again. So a durable consumer must be idempotent per journal seq: record its mark in the
  same transaction as its output (the projection: exactly-once in effect, and the epoch
  fences a stale writer), or skip what is at or below its mark (the ledger shards, which
  also skip an apply a retried call repeats).
- **Ephemeral consumers** (`durable = False`: the trade tape, the stream publisher) see
  batches from their start onwards and keep no mark. They never slow the pipeline: their
  finish, if any, runs in the background, unchained and not awaited. A failure in
  `committed` or in the finish is logged and counted (`Seam.failures`) and never fails a
  batch. They must not block: queue and drop if the far end is slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from actors.accounts import AccountId
from actors.contracts import Reservation
from actors.engine import Command, Event, Lots, OrderId, OrderView, Side, Ticks
from actors.ledger.fees import FillFees
from actors.market.ports import FencedError, JournalWriteError

log = logging.getLogger(__name__)

# Passes whose durable finishes may still be running when the next one starts matching.
MAX_TAILS_BEHIND = 2

Finish = Callable[[], Awaitable[None]]
"""What a consumer does for a batch after `committed` returns (run by the seam)."""


class CommittedEntry(NamedTuple):
    """One journal entry as its consumers see it.

    A NamedTuple, not a frozen dataclass, because one is built per command on the order
    path (the engine's events are NamedTuples for the same reason: ARCHITECTURE.md).

    Attributes:
        seq: The journal seq.
        request_id: The request's idempotency key.
        account_id: The acting account (None for an operator's command).
        client_order_id: The trader's id of a new order.
        digest: The new order's terms (`OrderRequest.digest`).
        command: The engine command as matched (owner and time set).
        events: The engine's events for it, in order.
        fees: One per `Fill` among `events`, in order: the notional and both fees.
        reservation: The reservation held for the command, if any.
        owners: Owners of the orders the command named, read before it ran.
    """

    seq: int
    request_id: str
    account_id: AccountId | None
    client_order_id: str | None
    digest: str | None
    command: Command
    events: tuple[Event, ...]
    fees: tuple[FillFees, ...]
    reservation: Reservation | None
    owners: Mapping[str, AccountId]


# Builds a `CommittedEntry` from its fields in C, without the NamedTuple's Python `__new__`
# (one entry per command on the order path; the engine builds its hottest events alike).
committed_entry: Callable[[tuple[object, ...]], CommittedEntry] = functools.partial(
    tuple.__new__, CommittedEntry
)


@dataclass(frozen=True, slots=True)
class CommittedBatch:
    """Journal entries committed together, `first_seq` to `last_seq` inclusive."""

    market: str
    epoch: int
    first_seq: int
    last_seq: int
    entries: tuple[CommittedEntry, ...]


class Book(Protocol):
    """Queries of the book after a batch (the engine answers them)."""

    def get_order(self, order_id: OrderId) -> OrderView | None:
        """Return a live order or pending stop, or None."""
        ...

    def live_order_ids(self) -> list[OrderId]:
        """Return the ids of every live order and pending stop."""
        ...

    @property
    def seq(self) -> int:
        """Return the engine event seq after the batch (the book's update id)."""
        ...

    def level(self, side: Side, price: Ticks) -> tuple[Lots, int]:
        """Return a price level's visible qty in lots and order count ((0, 0): none)."""
        ...

    def resting_level(self, order_id: OrderId) -> tuple[Side, Ticks] | None:
        """Return the side and price of the level a resting order is queued at, or None."""
        ...


class Consumer:
    """A consumer of committed batches (see the module docstring for the contract).

    Attributes:
        name: Its name in logs, `status()` lags and failure counts.
        stage: The `stage_seconds` key of its finishes (durable consumers).
        durable: Whether it keeps a mark and must see every entry (see above).
    """

    name = "consumer"
    stage = "tail_consumer"
    durable = False

    def committed(self, batch: CommittedBatch, book: Book) -> Finish | None:
        """Take a journaled batch (synchronously); return the rest of the work, if any."""
        raise NotImplementedError

    async def high_water(self) -> int | None:
        """Return the last journal seq this consumer has stored the output of (durable
        consumers: `recover` delivers the entries after it before the market serves), or
        None when it catches up from the journal by itself (in `ready`)."""
        raise NotImplementedError

    async def ready(self, epoch: int, book: Book) -> None:
        """Run once the market recovered, after every durable consumer caught up."""
        del epoch, book


class Seam:
    """Delivers committed batches to an ordered set of consumers.

    Args:
        consumers: The consumers, in delivery order.
        stage_s: Seconds per pipeline stage (`MarketCore.stage_s`), added to here.
        on_fenced: Called when a consumer found the market taken over.
    """

    def __init__(
        self,
        consumers: Sequence[Consumer],
        stage_s: dict[str, float],
        on_fenced: Callable[[], None],
    ) -> None:
        self.consumers = tuple(consumers)
        self._stage_s = stage_s
        self._on_fenced = on_fenced
        durable = [c.name for c in self.consumers if c.durable]
        self._chains: dict[str, asyncio.Task[None] | None] = dict.fromkeys(durable)
        # Per durable consumer, the journal seq through which its finishes completed;
        # None until this incarnation's first batch (recovery caught it up to the head).
        self.through: dict[str, int | None] = dict.fromkeys(durable)
        self.failures: dict[str, int] = {c.name: 0 for c in self.consumers if not c.durable}
        self.tail: asyncio.Task[None] | None = None  # every durable finish of the last batch
        self.tails: deque[asyncio.Task[None]] = deque()  # the batches not known settled
        self._background: set[asyncio.Task[None]] = set()

    async def bounded(self) -> None:
        """Wait until fewer than `MAX_TAILS_BEHIND` batches have durable work running.

        Raises:
            JournalWriteError, FencedError: A durable finish failed (nothing changed).
        """
        while self.tails and self.tails[0].done():
            self.tails.popleft().result()
        if len(self.tails) >= MAX_TAILS_BEHIND:
            await self.tails.popleft()

    def deliver(self, batch: CommittedBatch, book: Book) -> None:
        """Hand a journaled batch to every consumer, in order (see the module docstring)."""
        finishes: list[asyncio.Task[None]] = []
        for consumer in self.consumers:
            if consumer.durable:
                finishes.append(self._durable(consumer, batch, book))
            else:
                self._ephemeral(consumer, batch, book)
        self.tail = asyncio.create_task(self._settle(self.tail, finishes))
        self.tails.append(self.tail)

    def _durable(self, consumer: Consumer, batch: CommittedBatch, book: Book) -> asyncio.Task[None]:
        name = consumer.name
        if self.through[name] is None:
            self.through[name] = batch.first_seq - 1
        try:
            finish = consumer.committed(batch, book)
        except Exception as exc:  # journaled already: fail its finish, which restarts
            finish = _raising(exc)
        previous = self._chains[name]
        task = asyncio.create_task(self._finish(consumer, previous, finish, batch.last_seq))
        self._chains[name] = task
        return task

    async def _finish(
        self,
        consumer: Consumer,
        previous: asyncio.Task[None] | None,
        finish: Finish | None,
        seq: int,
    ) -> None:
        if previous is not None:
            await previous  # in journal order; a failure ends the chain
        started = time.perf_counter()
        try:
            if finish is not None:
                await finish()
        except FencedError:
            self._on_fenced()
            raise
        except Exception as exc:
            # A consumer that missed entries must catch up from the journal before it sees
            # later ones: restart, and recovery hands it what is after its mark.
            raise JournalWriteError(f"{consumer.name} failed: {exc!r}") from exc
        self._stage_s[consumer.stage] = self._stage_s.get(consumer.stage, 0.0) + (
            time.perf_counter() - started
        )
        self.through[consumer.name] = seq

    async def _settle(
        self, previous: asyncio.Task[None] | None, finishes: list[asyncio.Task[None]]
    ) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):  # it failed: so does one of `finishes`
                await previous
        started = time.perf_counter()
        await asyncio.gather(*finishes)
        self._stage_s["tail"] = self._stage_s.get("tail", 0.0) + time.perf_counter() - started

    def _ephemeral(self, consumer: Consumer, batch: CommittedBatch, book: Book) -> None:
        try:
            finish = consumer.committed(batch, book)
        except Exception:
            self._failed(consumer, batch)
            return
        if finish is None:
            return
        task = asyncio.ensure_future(_run(finish))
        self._background.add(task)
        task.add_done_callback(lambda t: self._done(consumer, batch, t))

    def _done(self, consumer: Consumer, batch: CommittedBatch, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failed(consumer, batch, task.exception())

    def _failed(
        self, consumer: Consumer, batch: CommittedBatch, exc: BaseException | None = None
    ) -> None:
        self.failures[consumer.name] += 1
        log.error(
            "market %s: consumer %s failed on seq %d-%d (the batch stands)",
            batch.market, consumer.name, batch.first_seq, batch.last_seq,
            exc_info=exc if exc is not None else True,
        )  # fmt: skip

    def lag(self, seq: int) -> dict[str, int]:
        """Return per durable consumer how many journal entries await its finish."""
        return {name: seq - (seq if done is None else done) for name, done in self.through.items()}

    async def settled(self) -> None:
        """Wait until every batch delivered so far is finished by its durable consumers."""
        if self.tail is not None:
            await self.tail


def _raising(exc: Exception) -> Finish:
    async def finish() -> None:
        raise exc

    return finish


async def _run(finish: Finish) -> None:
    await finish()
