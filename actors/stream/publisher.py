"""`StreamPublisher`: the ephemeral consumer (`stream`) that publishes a market's committed
batches to the real-time stream (`messages.py`), for the gateway's WebSocket fan-out.

Per committed batch with events, synchronously in `committed` (it runs on the market's
pass, so it stays small and never waits):

- **Book levels.** Every level the batch may have changed, read from the book after it:
  for each order an event names, the level it rested at before the batch (kept here, as
  `order id -> (side, price)`) and the one it rests at after (`Book.resting_level`). A
  level's aggregate is the sum over its orders, and an order's contribution changes only
  with an event naming it (a fill, an iceberg refill through its fill, a cancel, an
  amend, a trigger, an STP decrement), so no changed level is missed.
- **Trades** from the batch's fills: `id` the fill's event seq, `ts` the command's time,
  as the trade tape and the trades table have them.
- **Order states and fills** per account: the projection's rows of the batch
  (`actors.market.projection`), applied to the orders table's state kept in memory
  (`orders.OrderStates`), and each side of each fill.

`U` = the last published `u` + 1 and `u` = the engine seq after the batch, so messages
chain: `U` is seeded in `ready` with the book's seq, and a batch without events (`U > u`,
e.g. a tick that expired nothing) publishes nothing. A message lost downstream (a full
queue, Redis away) shows as a gap to the gateway, which then resyncs from the market.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from actors.accounts import AccountId
from actors.engine import Amended, Cancelled, Fill, MarketSpec, OrderId, Side, Ticks
from actors.engine.events import Accepted, StpDecrement, Triggered
from actors.market.consumers import ProjectedRows
from actors.market.ports import Clock, ProjectionStore
from actors.market.projection import Projection
from actors.market.rows import NewOrderRow, OrderUpdate, TradeRow
from actors.market.seam import Book, CommittedBatch, Consumer
from actors.stream.messages import (
    AccountBatch,
    AccountFill,
    Level,
    MarketBatch,
    OrderState,
    Trade,
    account_channel,
    encode,
    md_channel,
)
from actors.stream.orders import OrderStates
from actors.stream.ports import Sink

_BUY = Side.BUY
_OTHER_SIDE = {"buy": "sell", "sell": "buy"}
_Where = tuple[Side, Ticks]


class StreamPublisher(Consumer):
    """Publishes each committed batch of one market (see the module docstring).

    Args:
        spec: The market.
        sink: Where messages go.
        store: The orders table (read once, in `ready`).
        clock: Milliseconds now (`E`).
        rows_of: The projection's rows of a batch when a consumer before this one built
            them already (`Projector.rows_of`: building them is most of the work), else
            None; this publisher then builds its own.
    """

    name = "stream"

    def __init__(
        self,
        spec: MarketSpec,
        sink: Sink,
        store: ProjectionStore,
        clock: Clock,
        rows_of: Callable[[CommittedBatch], ProjectedRows | None] | None = None,
    ) -> None:
        self._spec = spec
        self._rows_of = rows_of
        self._symbol = spec.symbol
        self._channel = md_channel(spec.symbol)
        self._sink = sink
        self._store = store
        self._clock = clock
        self._resting: dict[str, _Where] = {}  # resting order -> its level
        self.orders = OrderStates(spec.symbol)
        self.last_u: int | None = None  # None until ready: nothing is published before
        self.batches = 0  # messages published on the market's channel

    async def ready(self, epoch: int, book: Book) -> None:
        """Start from the book and the orders table as recovered."""
        self.orders.seed(await self._store.live_orders())
        self._resting = _resting_of(book)
        self.last_u = book.seq

    def committed(self, batch: CommittedBatch, book: Book) -> None:
        """Publish what the batch changed (nothing when it has no event)."""
        if self.last_u is None:
            return
        first, last = self.last_u + 1, book.seq
        if first > last:
            return
        # Moved first: if what follows fails (a bug, counted by the seam), nothing of this
        # batch goes out and the next message's `U` shows the gap, so clients resync.
        self.last_u = last
        try:
            self._publish(batch, book, first, last)
        except Exception:
            self._resting = _resting_of(book)  # the next batches' levels stay exact
            raise

    def _publish(self, batch: CommittedBatch, book: Book, first: int, last: int) -> None:
        rows, trade_rows = self._rows(batch, book)
        bids, asks = self._levels(batch, book)
        now = self._clock()
        trades = [_trade(t) for t in trade_rows]
        message = MarketBatch(self._symbol, first, last, now, bids, asks, trades)
        self._sink.publish(self._channel, encode(message))
        self.batches += 1
        self._publish_accounts(rows, trade_rows, now)

    def _rows(self, batch: CommittedBatch, book: Book) -> ProjectedRows:
        shared = None if self._rows_of is None else self._rows_of(batch)
        if shared is not None:
            return shared
        projection = Projection(self._spec)
        for entry in batch.entries:
            projection.add(entry)
        return projection.finish(book), projection.trades

    def _levels(self, batch: CommittedBatch, book: Book) -> tuple[list[Level], list[Level]]:
        """Return the bid and ask levels the batch may have changed, read after it."""
        touched: set[_Where] = set()
        resting = self._resting
        for oid in _named(batch):
            before = resting.pop(oid, None)
            if before is not None:
                touched.add(before)
            after = book.resting_level(OrderId(oid))
            if after is not None:
                resting[oid] = after
                touched.add(after)
        bids: list[Level] = []
        asks: list[Level] = []
        for side, price in touched:
            qty, count = book.level(side, price)
            (bids if side is _BUY else asks).append(Level(price, qty, count))
        return bids, asks

    def _publish_accounts(
        self, rows: list[NewOrderRow | OrderUpdate], trades: list[TradeRow], now: int
    ) -> None:
        orders: defaultdict[AccountId, list[OrderState]] = defaultdict(list)
        for account, state in self.orders.apply(rows):
            orders[account].append(state)
        fills: defaultdict[AccountId, list[AccountFill]] = defaultdict(list)
        for t in trades:
            maker_side = _OTHER_SIDE[t.taker_side]
            fills[t.maker_account_id].append(
                self._fill(t, t.maker_order_id, maker_side, "maker", t.maker_fee_atoms)
            )
            fills[t.taker_account_id].append(
                self._fill(t, t.taker_order_id, t.taker_side, "taker", t.taker_fee_atoms)
            )
        for account in orders.keys() | fills.keys():
            message = AccountBatch(account, now, orders.get(account, []), fills.get(account, []))
            self._sink.publish(account_channel(account), encode(message))

    def _fill(self, t: TradeRow, order_id: str, side: str, liquidity: str, fee: int) -> AccountFill:
        return AccountFill(
            self._symbol, t.seq, order_id, side, liquidity,  # type: ignore[arg-type]
            t.price_ticks, t.qty_lots, t.quote_qty_atoms, fee, t.executed_at_ms,
        )  # fmt: skip


def _resting_of(book: Book) -> dict[str, _Where]:
    """Return the level of every order resting in the book."""
    resting = ((oid, book.resting_level(oid)) for oid in book.live_order_ids())
    return {oid: where for oid, where in resting if where is not None}


def _named(batch: CommittedBatch) -> set[str]:
    """Return the ids of the orders the batch's events name."""
    named: set[str] = set()
    for entry in batch.entries:
        for e in entry.events:
            kind = type(e)
            if kind is Fill or kind is StpDecrement:
                named.add(e.maker_id)  # type: ignore[union-attr]
                named.add(e.taker_id)  # type: ignore[union-attr]
            elif kind is Accepted or kind is Cancelled or kind is Amended or kind is Triggered:
                named.add(e.id)  # type: ignore[union-attr,arg-type]
    return named


def _trade(t: TradeRow) -> Trade:
    return Trade(
        t.seq, t.price_ticks, t.qty_lots, t.taker_side,  # type: ignore[arg-type]
        t.executed_at_ms, t.maker_order_id, t.taker_order_id,
    )  # fmt: skip
