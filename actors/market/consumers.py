"""The market's consumers of committed batches (`seam.py`): the ledger apply, the orders
and trades projection (durable), and the in-memory tape of recent trades (ephemeral).

`market_consumers` gives them in delivery order: the ledger first, so that the apply is
on its way to the shards before anything else runs.
"""

from __future__ import annotations

import logging
from collections import deque

from actors.contracts import JsonDict, LedgerEntry
from actors.engine import Fill, MarketSpec
from actors.market import routing
from actors.market.ports import Ledger, ProjectionStore
from actors.market.projection import Projection
from actors.market.rows import NewOrderRow, OrderUpdate, TradeRow
from actors.market.seam import Book, CommittedBatch, Consumer, Finish

log = logging.getLogger(__name__)
RECENT_TRADES = 1_000

ProjectedRows = tuple[list[NewOrderRow | OrderUpdate], list[TradeRow]]
"""A batch's orders projection rows and trade rows (`Projector.rows_of`)."""


class LedgerApply(Consumer):
    """Applies committed entries to the ledger shards.

    `committed` sends each entry to the shards of the accounts it concerns
    (`routing.entry_accounts`); the finish waits until they applied it. The shards keep a
    mark per market and catch up from the journal themselves, skipping what is at or below
    their marks: `high_water` is None, and `ready` has every shard catch up
    (`Ledger.sync_all`) before the market serves.

    Args:
        ledger: The ledger shards.
        market: The market's symbol.
    """

    name = "ledger"
    stage = "tail_apply"
    durable = True

    def __init__(self, ledger: Ledger, market: str) -> None:
        self._ledger = ledger
        self._market = market

    def committed(self, batch: CommittedBatch, book: Book) -> Finish:
        """Send the batch's entries to the shards now; return the wait for them."""
        new = tuple.__new__  # a LedgerEntry from its fields in C (one per command)
        entries = [new(LedgerEntry, (e.seq, e.events, e.reservation)) for e in batch.entries]
        accounts = [
            routing.entry_accounts(e.events, e.reservation, e.owners) for e in batch.entries
        ]
        applied = self._ledger.start_apply(batch.market, entries, accounts)

        async def finish() -> None:
            await applied

        return finish

    async def high_water(self) -> None:
        """Return None: the shards read what they lack from the journal (`ready`)."""
        return None

    async def ready(self, epoch: int, book: Book) -> None:
        """Make every shard catch up with the journal, then release holds of older
        incarnations and reservations of orders not live (a crash between a reserve and
        its journal commit)."""
        await self._ledger.sync_all(self._market)
        released = await self._ledger.release_orphans(self._market, book.live_order_ids(), epoch)
        log.info("market %s: %d orphan reservations released", self._market, released)


class Projector(Consumer):
    """Writes the orders and trades tables: one transaction per batch, which also raises
    the market's projection mark (fenced by the epoch).

    Args:
        spec: The market.
        store: The orders and trades tables.
    """

    name = "projection"
    stage = "tail_project"
    durable = True

    def __init__(self, spec: MarketSpec, store: ProjectionStore) -> None:
        self._spec = spec
        self._store = store
        self._last: tuple[CommittedBatch, ProjectedRows] | None = None

    def committed(self, batch: CommittedBatch, book: Book) -> Finish:
        """Build the batch's rows from the book after it; return their write."""
        projection = Projection(self._spec)
        for entry in batch.entries:
            projection.add(entry)
        updates = projection.finish(book)
        trades = projection.trades
        self._last = (batch, (updates, trades))

        async def finish() -> None:
            await self._store.project(batch.epoch, batch.last_seq, updates, trades)

        return finish

    async def high_water(self) -> int:
        """Return the projection mark."""
        return await self._store.projection_mark()

    def rows_of(self, batch: CommittedBatch) -> ProjectedRows | None:
        """Return the rows built for `batch` if it is the last batch given to `committed`
        (a consumer after this one reuses them instead of building them again; read-only)."""
        last = self._last
        return last[1] if last is not None and last[0] is batch else None


class TradeTape(Consumer):
    """The market's recent trades in memory (`MarketActor.recent_trades`), newest last.

    Args:
        store: The trades table, which fills the tape at start.
        size: How many trades it keeps.
    """

    name = "trades"

    def __init__(self, store: ProjectionStore, size: int = RECENT_TRADES) -> None:
        self._store = store
        self._size = size
        self.trades: deque[JsonDict] = deque(maxlen=size)

    def committed(self, batch: CommittedBatch, book: Book) -> None:
        """Append the batch's fills in their public form."""
        for entry in batch.entries:
            if not entry.fees:  # one per fill: most commands have none
                continue
            ts = getattr(entry.command, "ts", 0)
            for e in entry.events:
                if type(e) is Fill:
                    self.trades.append(_public(e, ts))

    async def ready(self, epoch: int, book: Book) -> None:
        """Load the last trades from the trades table."""
        self.trades.clear()
        self.trades.extend(reversed(await self._store.recent_trades(self._size)))

    def recent(self, limit: int) -> list[JsonDict]:
        """Return up to `limit` recent trades, newest first."""
        return list(reversed(self.trades))[:limit]


def _public(fill: Fill, ts: int) -> JsonDict:
    """Return a fill in the tape's public form (`rows.trade_dict`'s)."""
    return {
        "seq": fill.seq,
        "maker_order_id": fill.maker_id,
        "taker_order_id": fill.taker_id,
        "taker_side": fill.taker_side._value_,
        "price": fill.price,
        "qty": fill.qty,
        "ts": ts,
    }


def market_consumers(
    spec: MarketSpec, ledger: Ledger, projection: ProjectionStore
) -> tuple[LedgerApply, Projector, TradeTape]:
    """Return a market's consumers, in delivery order."""
    return (
        LedgerApply(ledger, spec.symbol),
        Projector(spec, projection),
        TradeTape(projection),
    )
