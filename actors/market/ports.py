"""The ports of a market's pipeline: what `MarketCore` and `recover` need from the world.

The pipeline (`core.py`, `recovery.py`, `seam.py`, `consumers.py`) depends only on these
small interfaces, the pure engine and the ledger's pure rules. The adapters live beside
it: `journal.Journal` (asyncpg) is the journal, snapshot and projection store, and
`ledger_client.LedgerClient` (Ray and direct channels) the ledger. `tests/support/fakes.py`
has an in-memory fake of each, the way exchange-core tests with its dummy serialization
processor. The clock is a function returning milliseconds.

Errors are part of the contract: a store raises `FencedError` when a newer incarnation
took the market over, `LostHoldError` when a ledger shard lost a batch's holds; anything
else a store or the ledger raises is a failure the market restarts from.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from actors.accounts import AccountId
from actors.contracts import LedgerEntry, Reservation
from actors.market.rows import (
    JournalRow,
    JsonDict,
    NewOrderRow,
    OrderRow,
    OrderUpdate,
    SnapshotRow,
    TradeRow,
)

Clock = Callable[[], int]
"""Milliseconds since the epoch (the pipeline's only clock)."""

Hold = tuple[int, int]
"""Where a reservation is held: (ledger shard, that shard's epoch)."""


class FencedError(RuntimeError):
    """Another incarnation of the market took over (stale epoch): stop writing."""


class LostHoldError(RuntimeError):
    """A ledger shard restarted after holding funds for the batch: the batch cannot be
    journaled (migration 0009). The engine already matched it: restart and recover."""


class JournalWriteError(RuntimeError):
    """The journal write (or a durable consumer of committed events) failed for another
    reason than fencing: the in-memory state is unusable, restart from the journal."""


class PassFailedError(JournalWriteError):
    """A pass failed before its journal commit for another reason than fencing (a shard
    out of reach past the deadline, a bug): its holds, and the engine's state if it
    matched, changed without a journal entry. Like a failed journal write, only a restart
    from the journal brings the market back in line (and releases the holds)."""


class JournalStore(Protocol):
    """One market's journal: the commit point of every batch."""

    async def acquire_epoch(self, holder: str) -> int:
        """Take the market over: bump and return its epoch (fences older incarnations)."""
        ...

    async def append(self, epoch: int, rows: Sequence[JournalRow]) -> None:
        """Write a batch's rows atomically: the acknowledgement point.

        Raises:
            FencedError: `epoch` is no longer the market's.
            LostHoldError: A row's hold was made by a ledger shard incarnation now gone.
        """
        ...

    async def high_water(self) -> int:
        """Return the last journal seq (0 when empty)."""
        ...

    def load_tail(self, after_seq: int) -> AsyncGenerator[list[JournalRow]]:
        """Yield the rows after `after_seq` in seq order, in chunks."""
        ...


class SnapshotStore(Protocol):
    """Engine snapshots, which bound the journal tail a recovery replays."""

    async def load_latest_snapshot(self, max_seq: int | None = None) -> SnapshotRow | None:
        """Return the snapshot with the highest seq (at most `max_seq`), or None."""
        ...

    async def save_snapshot(
        self, epoch: int, seq: int, event_seq: int, state: bytes, fmt: str
    ) -> None:
        """Store a snapshot taken after journal row `seq` (fenced like `append`)."""
        ...


class ProjectionStore(Protocol):
    """The orders and trades tables, written behind the journal with their own mark."""

    async def projection_mark(self) -> int:
        """Return the last journal seq reflected in orders and trades (0 when none)."""
        ...

    async def project(
        self,
        epoch: int,
        upto_seq: int,
        order_updates: Sequence[NewOrderRow | OrderUpdate],
        trades: Sequence[TradeRow],
    ) -> None:
        """Write the rows of journal entries up to `upto_seq` and raise the mark to it,
        atomically (fenced like `append`)."""
        ...

    async def client_orders(self) -> dict[tuple[AccountId, str], tuple[str, str | None]]:
        """Return (account, client order id) -> (order id, digest) of the live orders."""
        ...

    async def recent_trades(self, limit: int) -> list[JsonDict]:
        """Return the last `limit` trades in their public form, newest first."""
        ...

    async def live_orders(self) -> list[OrderRow]:
        """Return the market's live orders (open, untriggered, partially filled) as stored."""
        ...


class Ledger(Protocol):
    """The ledger shards, as one market sees them."""

    async def reserve(
        self, reservations: list[Reservation], market_epoch: int
    ) -> list[Hold | None]:
        """Hold funds for orders before matching; None where the funds are short.

        Raises:
            StaleMarketEpochError: A newer incarnation of the market took over.
        """
        ...

    def start_apply(
        self, market: str, entries: list[LedgerEntry], accounts: Sequence[set[AccountId] | None]
    ) -> Awaitable[None]:
        """Send journaled entries now, each to the shards of the accounts it concerns
        (None: every shard); return the wait for them to be applied."""
        ...

    async def sync_all(self, market: str) -> list[int]:
        """Make every shard catch up with the market's journal; return their marks."""
        ...

    async def release_orphans(
        self, market: str, live_order_ids: Sequence[str], market_epoch: int
    ) -> int:
        """Release reservations of orders that are not live and older incarnations' holds."""
        ...


@dataclass(frozen=True, slots=True)
class Ports:
    """What a market's pipeline runs against."""

    journal: JournalStore
    snapshots: SnapshotStore
    projection: ProjectionStore
    ledger: Ledger
