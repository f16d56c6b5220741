"""The matching core: engine state, the incoming-order algorithm, STP and stop cascades.

``MatchingEngine`` (engine.py) decodes commands and calls into this class; queries live in
queries.py, snapshots in snapshot.py. Everything here mutates the engine state and appends
events to the ``out`` list it is given; nothing performs I/O or reads a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import cast

from actors.engine.book import BookSide, Level, Order, SpecialOrder
from actors.engine.events import Cancelled, Event, Fill, StpDecrement, Triggered
from actors.engine.fok import fok_fillable
from actors.engine.spec import MarketSpec
from actors.engine.types import (
    MAX_INT64_EXCLUSIVE,
    CancelReason,
    OrderId,
    OrderKind,
    Owner,
    PostOnly,
    Side,
    StpMode,
    TimeInForce,
)

NO_LIMIT = 1 << 64
"""A limit key no level key reaches: market orders cross every level."""

_BUY = Side.BUY
_SELL = Side.SELL
_LIMIT = OrderKind.LIMIT
_MARKET = OrderKind.MARKET
_STOP_LIMIT = OrderKind.STOP_LIMIT
_GTC = TimeInForce.GTC
_GTD = TimeInForce.GTD
_FOK = TimeInForce.FOK
_STP_NONE = StpMode.NONE
_STP_OLDEST = StpMode.CANCEL_OLDEST
_STP_DECREMENT = StpMode.DECREMENT_AND_CANCEL
_R_STP = CancelReason.STP
_R_IOC = CancelReason.IOC_REMAINDER
_R_NO_LIQ = CancelReason.NO_LIQUIDITY
_STALE_EXPIRY_SLACK = 64

# The hot path does its arithmetic on plain ints; these casts let it build events whose
# fields are typed Ticks/Lots/TickLots without a NewType call per field (zero runtime cost).
_fill = cast("Callable[[int, OrderId, OrderId, Owner, Owner, int, int, Side], Fill]", Fill)
# Builds a NamedTuple event without its Python-level ``__new__`` (about 2x faster); only for
# the hottest events, which pass every field in order.
_new_tuple = tuple.__new__
_cancelled_event = cast(
    "Callable[[int, OrderId, CancelReason, int, int | None], Cancelled]", Cancelled
)
_stp_decrement = cast("Callable[[int, OrderId, OrderId, int], StpDecrement]", StpDecrement)

ExpiryEntry = tuple[int, int, Order]
"""(expire_at in ms, arrival number when pushed, order); arrival numbers are unique."""


class MatcherCore:
    """Engine state and the matching algorithm (see ENGINE_SPEC.md, rules 1-9)."""

    __slots__ = (
        "_arrival",
        "_asks",
        "_bids",
        "_buy_stop_min",
        "_expiry",
        "_halted",
        "_last_price",
        "_max_qty",
        "_min_notional",
        "_min_qty",
        "_orders",
        "_sell_stop_max",
        "_seq",
        "_small_max_qty",
        "_stops",
        "_traded",
        "spec",
    )

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self._bids = BookSide(is_bid=True)
        self._asks = BookSide(is_bid=False)
        self._orders: dict[OrderId, Order] = {}
        self._stops: dict[OrderId, Order] = {}
        self._expiry: list[ExpiryEntry] = []
        self._seq = 0
        self._arrival = 0
        self._last_price: int | None = None
        self._traded = False
        self._halted = False
        self._buy_stop_min = NO_LIMIT
        self._sell_stop_max = -1
        # The spec's quantity and notional bounds folded for the plain-order fast path:
        # a quantity is valid iff _min_qty <= qty <= _max_qty, a limit order's notional
        # iff price * qty >= _min_notional (0 when the market has no minimum).
        self._min_qty = 1 if spec.min_qty is None else spec.min_qty
        self._max_qty = MAX_INT64_EXCLUSIVE - 1
        if spec.max_qty is not None:
            self._max_qty = min(spec.max_qty, self._max_qty)
        # min(_max_qty, 2**30 - 1): see engine._SMALL.
        self._small_max_qty = min(self._max_qty, (1 << 30) - 1)
        self._min_notional = spec.min_notional or 0

    # -- small state helpers ---------------------------------------------------------------

    def _cancelled(
        self,
        oid: OrderId,
        reason: CancelReason,
        qty: int,
        out: list[Event],
        quote_left: int | None = None,
    ) -> None:
        self._seq += 1
        out.append(_cancelled_event(self._seq, oid, reason, qty, quote_left))

    def _next_arrival(self) -> int:
        self._arrival += 1
        return self._arrival

    def _rest(self, o: Order) -> None:
        display = o.display
        qty = o.qty
        o.visible = display if display and display < qty else qty
        price = o.price
        assert price is not None
        if o.is_buy:
            side = self._bids
            lv = side.levels.get(-price)
        else:
            side = self._asks
            lv = side.levels.get(price)
        if lv is None:
            side.append(o)
        else:
            # Inlined BookSide.append for the common case of an existing level.
            tail = lv.tail
            assert tail is not None
            tail.next = o
            o.prev = tail
            o.next = None
            lv.tail = o
            lv.total += o.visible
            lv.count += 1
        self._orders[o.id] = o
        if o.expire_at is not None:
            self._push_expiry(o)

    def _push_expiry(self, o: Order) -> None:
        assert o.expire_at is not None
        heap = self._expiry
        if len(heap) > 2 * (len(self._orders) + len(self._stops)) + _STALE_EXPIRY_SLACK:
            self._rebuild_expiry()
        heappush(heap, (o.expire_at, o.arrival, o))

    def _rebuild_expiry(self) -> None:
        live = [*self._orders.values(), *self._stops.values()]
        self._expiry[:] = [(o.expire_at, o.arrival, o) for o in live if o.expire_at is not None]
        heapify(self._expiry)

    def _is_live(self, o: Order) -> bool:
        return self._orders.get(o.id) is o or self._stops.get(o.id) is o

    def _take_out(self, o: Order) -> None:
        """Remove a live order or pending stop from every structure (no event)."""
        if self._stops.get(o.id) is o:
            del self._stops[o.id]
            return
        side = self._bids if o.is_buy else self._asks
        side.unlink(o, side.level_of(o))
        del self._orders[o.id]

    def _replenish(self, m: Order, lv: Level, side: BookSide) -> None:
        """Queue a fresh iceberg slice of ``m`` (head of ``lv``, slice used up) at the back."""
        if lv.tail is not m:
            m.visible = 0
            side.unlink(m, lv)
            m.visible = m.display if m.display < m.qty else m.qty
            side.append(m)
        else:
            m.visible = m.display if m.display < m.qty else m.qty
            lv.total += m.visible
        m.arrival = self._next_arrival()

    def _remove_maker(self, m: Order, lv: Level, side: BookSide) -> None:
        side.unlink(m, lv)
        del self._orders[m.id]

    # -- incoming orders -------------------------------------------------------------------

    def _process(self, o: Order, out: list[Event]) -> None:
        """Match an incoming limit or market order (``o.qty`` lots), then rest or cancel it."""
        is_buy = o.is_buy
        opp = self._asks if is_buy else self._bids
        price = o.price
        limit_key = NO_LIMIT if price is None else (price if is_buy else -price)
        if o.post_only is not None:
            self._post_only(o, opp, limit_key, out)
            return
        heap = opp.heap
        if not heap or heap[0] > limit_key:
            # Nothing crosses (a stale top key is never better than the true best level).
            if o.tif is _FOK:
                self._cancelled(o.id, CancelReason.FOK_UNFILLED, o.qty, out)
            else:
                self._finish(o, o.qty, False, out)
            return
        if o.tif is _FOK and not fok_fillable(o, opp, limit_key):
            self._cancelled(o.id, CancelReason.FOK_UNFILLED, o.qty, out)
            return
        stp_taker = None if o.stp is _STP_NONE else o
        r = self._sweep(opp, limit_key, o.id, o.owner, stp_taker, o.qty, out)
        self._finish(o, r, self._traded, out)

    def _sweep(  # noqa: PLR0917 - private hot-path helper
        self,
        opp: BookSide,
        limit_key: int,
        oid: OrderId,
        owner: Owner,
        stp_taker: Order | None,
        r: int,
        out: list[Event],
    ) -> int:
        """Match ``r`` lots of an incoming order against ``opp``, best level first.

        The caller has cleared ``_traded``; a fill sets it and ``_last_price``.

        Args:
            opp: The opposite side of the book.
            limit_key: Only levels whose key is ``<= limit_key`` cross.
            oid: The incoming order's id.
            owner: Its owner.
            stp_taker: The incoming order when its STP mode is not ``none``, else None.
            r: The lots it still wants.
            out: Event sink.

        Returns:
            The lots left unfilled (0 when STP cancelled the incoming order).
        """
        heap = opp.heap
        levels = opp.levels
        index = self._orders
        side = _SELL if opp.is_bid else _BUY
        last = None
        while heap:
            k = heap[0]
            if k > limit_key:
                break
            lv = levels.get(k)
            if lv is None:
                heappop(heap)
                continue
            m = lv.head
            assert m is not None
            if stp_taker is not None and m.owner == owner:
                dec = self._self_trade(stp_taker, m, lv, opp, r, out)
                if dec < 0 or dec == r:
                    self._cancelled(oid, _R_STP, r - max(dec, 0), out)
                    r = 0
                    break
                r -= dec
                continue
            price = lv.price
            mv = m.visible
            q = r if r < mv else mv
            seq = self._seq + 1
            self._seq = seq
            out.append(_new_tuple(Fill, (seq, m.id, oid, m.owner, owner, price, q, side)))
            last = price
            r -= q
            m.qty -= q
            if q == mv:
                lv.total -= q
                if m.qty:
                    self._replenish(m, lv, opp)
                else:
                    nxt = m.next
                    if nxt is None:
                        del levels[k]
                        heappop(heap)
                    else:
                        lv.head = nxt
                        nxt.prev = None
                        m.next = None
                        lv.count -= 1
                    del index[m.id]
            else:
                m.visible = mv - q
                lv.total -= q
            if not r:
                break
        if last is not None:
            self._last_price = last
            self._traded = True
        return r

    def _finish(self, o: Order, r: int, filled: bool, out: list[Event]) -> None:
        """Rest or cancel the ``r`` lots left of an incoming order after matching."""
        o.qty = r
        if not r:
            return
        if o.kind is _LIMIT:
            tif = o.tif
            if tif is _GTC or tif is _GTD:
                self._rest(o)
                return
            reason = _R_IOC
        else:
            reason = _R_IOC if filled else _R_NO_LIQ
        self._cancelled(o.id, reason, r, out)

    def _post_only(self, o: Order, opp: BookSide, limit_key: int, out: list[Event]) -> None:
        best = opp.best()
        if best is not None and opp.key(best.price) <= limit_key:
            new_price = best.price - 1 if o.is_buy else best.price + 1
            if o.post_only is PostOnly.REJECT or new_price <= 0:
                self._cancelled(o.id, CancelReason.POST_ONLY, o.qty, out)
                return
            o.price = new_price
        self._rest(o)

    def _process_quote(self, o: Order, budget: int, out: list[Event]) -> None:
        """Match a market buy spending at most ``budget`` tick-lots (rule 5).

        With a quantity as well (``o.qty`` > 0), the order also stops once that many lots
        are filled: whichever limit binds first (a market buy with price protection).
        """
        opp = self._asks
        stp_on = o.stp is not _STP_NONE
        capped = o.qty > 0
        left = o.qty
        filled = False
        priced_out = False
        while budget and (left or not capped):
            lv = opp.best()
            if lv is None:
                break
            price = lv.price
            afford = budget // price
            if capped and left < afford:
                afford = left
            if not afford:
                priced_out = True
                break
            m = lv.head
            assert m is not None
            if stp_on and m.owner == o.owner:
                dec = self._self_trade(o, m, lv, opp, afford, out)
                budget -= max(dec, 0) * price
                left -= max(dec, 0) if capped else 0
                if dec < 0 or dec == afford:
                    self._cancelled(o.id, _R_STP, left, out, budget)
                    return
                continue
            q = afford if afford < m.visible else m.visible
            self._seq += 1
            out.append(_fill(self._seq, m.id, o.id, m.owner, o.owner, price, q, _BUY))
            filled = True
            self._last_price = price
            self._traded = True
            budget -= q * price
            if capped:
                left -= q
            self._reduce_maker(m, lv, opp, q)
        if left if capped else budget:
            # Budget spent (or too small for a lot) while asks remain: the budget bound.
            if priced_out or (not budget and opp.best() is not None):
                reason = CancelReason.QUOTE_BUDGET
            else:
                reason = _R_IOC if filled else _R_NO_LIQ
            self._cancelled(o.id, reason, left, out, budget)

    def _reduce_maker(self, m: Order, lv: Level, side: BookSide, q: int) -> None:
        """Take ``q`` traded lots off the visible slice of ``m``, the head of ``lv``."""
        m.qty -= q
        if q < m.visible:
            m.visible -= q
            lv.total -= q
        elif m.qty:
            lv.total -= q
            self._replenish(m, lv, side)
        else:
            self._remove_maker(m, lv, side)

    def _self_trade(  # noqa: PLR0917 - private hot-path helper
        self, o: Order, m: Order, lv: Level, side: BookSide, incoming: int, out: list[Event]
    ) -> int:
        """Apply the incoming order's STP mode against own resting order ``m``.

        Args:
            o: The incoming order.
            m: The own resting order at the head of ``lv``.
            lv: Its level.
            side: Its book side.
            incoming: What the incoming order can still take at this price, in lots.
            out: Event sink.

        Returns:
            -1 when the incoming order must stop (the caller cancels it with ``stp``);
            otherwise the lots removed from the incoming order (0 for ``cancel_oldest``).
        """
        stp = o.stp
        if stp is _STP_DECREMENT:
            dec = incoming if incoming < m.qty else m.qty
            self._seq += 1
            out.append(_stp_decrement(self._seq, m.id, o.id, dec))
            reserve = m.qty - m.visible
            if dec > reserve:
                lv.total -= dec - reserve
                m.visible -= dec - reserve
            m.qty -= dec
            if not m.qty:
                self._remove_maker(m, lv, side)
                self._cancelled(m.id, _R_STP, 0, out)
            return dec
        if stp is StpMode.CANCEL_NEWEST:
            return -1
        self._remove_maker(m, lv, side)
        self._cancelled(m.id, _R_STP, m.qty, out)
        return 0 if stp is _STP_OLDEST else -1

    # -- stops -----------------------------------------------------------------------------

    def _stop_fires(self, s: Order, last: int) -> bool:
        stop = s.stop_price
        assert stop is not None
        return last >= stop if s.is_buy else last <= stop

    def _add_stop(self, s: Order, out: list[Event]) -> None:
        last = self._last_price
        if last is not None and self._stop_fires(s, last):
            self._cascade(deque((s,)), out)
            return
        self._stops[s.id] = s
        stop = s.stop_price
        assert stop is not None
        if s.is_buy:
            self._buy_stop_min = min(self._buy_stop_min, stop)
        else:
            self._sell_stop_max = max(self._sell_stop_max, stop)
        if s.expire_at is not None:
            self._push_expiry(s)

    def _collect_fired(self, queue: deque[Order]) -> None:
        last = self._last_price
        assert last is not None
        if self._buy_stop_min > last and self._sell_stop_max < last:
            return
        fired = [s for s in self._stops.values() if self._stop_fires(s, last)]
        for s in fired:
            del self._stops[s.id]
            queue.append(s)
        self._reset_stop_bounds()

    def _reset_stop_bounds(self) -> None:
        buy_min = NO_LIMIT
        sell_max = -1
        for s in self._stops.values():
            stop = s.stop_price
            assert stop is not None
            if s.is_buy:
                buy_min = min(buy_min, stop)
            else:
                sell_max = max(sell_max, stop)
        self._buy_stop_min = buy_min
        self._sell_stop_max = sell_max

    def _cascade(self, queue: deque[Order], out: list[Event]) -> None:
        """Trigger stops in placement order until none fires (rule 8)."""
        while True:
            if self._traded:
                self._traded = False
                if self._stops:
                    self._collect_fired(queue)
            if not queue:
                return
            s = queue.popleft()
            self._seq += 1
            out.append(Triggered(self._seq, s.id))
            s.arrival = self._next_arrival()
            assert isinstance(s, SpecialOrder)  # a stop is never plain: it has a stop price
            if s.kind is _STOP_LIMIT:
                s.kind = _LIMIT
            else:
                s.kind = _MARKET
                if s.budget:
                    self._process_quote(s, s.budget, out)
                    continue
            self._process(s, out)
