"""Read-only queries of an engine: best prices, L2/L3 books, orders and stops.

None of them changes state. ``MatchingEngine`` (engine.py) inherits them.
"""

from __future__ import annotations

from typing import Any

from actors.engine.matching import MatcherCore
from actors.engine.types import Lots, Millis, OrderId, Owner, Side, Ticks
from actors.engine.views import L2Book, L2Level, OrderView, order_view


class EngineQueries(MatcherCore):
    """The queries of ``MatchingEngine``; see that class."""

    __slots__ = ()

    @property
    def seq(self) -> int:
        """Return the ``seq`` of the last event emitted (0 before any)."""
        return self._seq

    @property
    def halted(self) -> bool:
        """Return whether the market is halted."""
        return self._halted

    @property
    def last_trade_price(self) -> Ticks | None:
        """Return the price of the last fill in ticks, or None before any trade."""
        return None if self._last_price is None else Ticks(self._last_price)

    def best_bid(self) -> Ticks | None:
        """Return the highest bid price in ticks, or None."""
        lv = self._bids.best()
        return None if lv is None else Ticks(lv.price)

    def best_ask(self) -> Ticks | None:
        """Return the lowest ask price in ticks, or None."""
        lv = self._asks.best()
        return None if lv is None else Ticks(lv.price)

    def l2(self, depth: int | None = None) -> L2Book:
        """Return aggregated levels (visible qty, order count), best first, up to ``depth``."""

        def side_levels(levels: list[Any]) -> list[L2Level]:
            return [L2Level(Ticks(lv.price), Lots(lv.total), lv.count) for lv in levels[:depth]]

        return L2Book(
            side_levels(self._bids.sorted_levels()), side_levels(self._asks.sorted_levels())
        )

    def level(self, side: Side, price: Ticks) -> tuple[Lots, int]:
        """Return one price level's visible qty in lots and its order count ((0, 0) when
        no order rests there); O(1)."""
        lv = self._bids.levels.get(-price) if side is Side.BUY else self._asks.levels.get(price)
        return (Lots(0), 0) if lv is None else (Lots(lv.total), lv.count)

    def resting_level(self, order_id: OrderId) -> tuple[Side, Ticks] | None:
        """Return the side and price in ticks of the level a resting order is queued at,
        or None when it does not rest in the book (a pending stop, gone); O(1)."""
        o = self._orders.get(order_id)
        if o is None:
            return None
        price = o.price
        assert price is not None  # every resting order has a limit price
        return (Side.BUY if o.is_buy else Side.SELL), Ticks(price)

    def l3(self) -> list[OrderView]:
        """Return every resting order: bids best first, then asks, each level in queue order."""
        return [
            order_view(o, "resting")
            for side in (self._bids, self._asks)
            for lv in side.sorted_levels()
            for o in lv.orders()
        ]

    def live_order_ids(self) -> list[OrderId]:
        """Return the ids of every resting order and pending stop, without building views."""
        return [*self._orders, *self._stops]

    def live_order_count(self) -> int:
        """Return how many orders rest in the book or wait as stops."""
        return len(self._orders) + len(self._stops)

    def stops(self) -> list[OrderView]:
        """Return the pending stops in placement order."""
        return [order_view(s, "pending_stop") for s in self._stops.values()]

    def get_order(self, order_id: OrderId) -> OrderView | None:
        """Return the live order or pending stop ``order_id``, or None."""
        o = self._orders.get(order_id)
        if o is not None:
            return order_view(o, "resting")
        s = self._stops.get(order_id)
        return None if s is None else order_view(s, "pending_stop")

    def next_expiry(self) -> Millis | None:
        """Return the earliest ``expire_at`` queued for expiry (GTD orders and stops), in
        milliseconds, or None. An order that left the book early stays queued until then
        (lazy deletion): a command at that time may then find nothing to expire."""
        heap = self._expiry
        return Millis(heap[0][0]) if heap else None

    def orders_of(self, owner: Owner) -> list[OrderView]:
        """Return the owner's resting orders and pending stops in arrival order."""
        views = [v for v in (*self.l3(), *self.stops()) if v.owner == owner]
        return sorted(views, key=lambda v: v.arrival)
