"""Order book storage: orders, price levels and one side of the book.

Layout, chosen for O(1) cancel and a cheap best price:

* Each price level is an intrusive doubly linked list of ``Order`` objects (``prev`` /
  ``next``), so unlinking any order is O(1) and the queue head is the next maker.
* A side keeps ``levels``: a dict from a *key* to its ``Level``, and ``heap``: a binary
  min-heap of keys with lazy deletion. The key of a price is ``price`` on the ask side and
  ``-price`` on the bid side, so the smallest key is always the best price and "crosses a
  limit" is one comparison ``key <= limit_key`` for either side.
* A key stays in the heap after its level empties; it is dropped when it reaches the top
  (``best``) or when the heap is rebuilt because stale keys outnumber live ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from heapq import heapify, heappop, heappush

from actors.engine.types import OrderId, OrderKind, Owner, PostOnly, StpMode, TimeInForce

_STALE_HEAP_SLACK = 32
_LIMIT = OrderKind.LIMIT
_GTC = TimeInForce.GTC
_STP_NONE = StpMode.NONE


class Order:
    """A plain live order: a GTC limit order resting in the book or being matched.

    Quantities are in lots, prices in ticks, times in milliseconds. ``qty`` is the whole open
    quantity (for an iceberg, visible slice plus reserve) and ``visible`` the slice queued in
    the book. ``arrival`` is the per-market arrival number that orders the queue.

    Layout: the fields every order needs are slots; the rest (``kind`` to ``budget`` below)
    are class attributes holding their defaults, which ``SpecialOrder`` overrides with slots
    of its own. Most live orders are plain, so they carry 9 slots instead of 17: cheaper to
    build on the hot path and 64 bytes smaller. ``new_order`` picks the class. The defaults
    are read-only on a plain order; only ``kind`` is ever changed (stops, which are special).
    """

    __slots__ = ("arrival", "id", "is_buy", "next", "owner", "prev", "price", "qty", "visible")

    # No ``__init__``: calling a class with a Python ``__init__`` costs a second interpreter
    # frame (about 300 ns against 150 ns for ``Order()`` and the stores, measured), and the
    # engine builds one per resting order. ``plain_order`` fills every slot.
    id: OrderId
    owner: Owner
    is_buy: bool
    price: int | None
    qty: int
    visible: int
    arrival: int
    prev: Order | None
    next: Order | None

    kind: OrderKind = OrderKind.LIMIT
    display: int = 0  # iceberg slice size in lots; 0 = plain
    tif: TimeInForce = TimeInForce.GTC
    expire_at: int | None = None
    post_only: PostOnly | None = None
    stp: StpMode = StpMode.NONE
    stop_price: int | None = None
    budget: int = 0  # market/stop-market buy spending cap in tick-lots; 0 = none


def plain_order(  # noqa: PLR0917 - positional like new_order, built per order
    oid: OrderId, owner: Owner, is_buy: bool, price: int | None, qty: int, arrival: int
) -> Order:
    """Return a plain ``Order`` (``visible`` 0, unlinked)."""
    o = Order()
    _fill_plain(o, oid, owner, is_buy, price, qty, arrival)
    return o


def _fill_plain(  # noqa: PLR0917 - positional like plain_order
    o: Order,
    oid: OrderId,
    owner: Owner,
    is_buy: bool,
    price: int | None,
    qty: int,
    arrival: int,
) -> None:
    """Set the slots every order has (``visible`` 0, unlinked)."""
    o.id = oid
    o.owner = owner
    o.is_buy = is_buy
    o.price = price
    o.qty = qty
    o.visible = 0
    o.arrival = arrival
    o.prev = None
    o.next = None


class SpecialOrder(Order):
    """An order with any field off its plain default: a stop, a market, IOC, FOK or GTD
    order, a post-only, iceberg, STP or budget order."""

    __slots__ = ("budget", "display", "expire_at", "kind", "post_only", "stop_price", "stp", "tif")

    def __init__(  # noqa: PLR0917 - positional on purpose, like plain_order
        self,
        oid: OrderId,
        owner: Owner,
        is_buy: bool,
        kind: OrderKind,
        price: int | None,
        qty: int,
        display: int,
        tif: TimeInForce,
        expire_at: int | None,
        post_only: PostOnly | None,
        stp: StpMode,
        stop_price: int | None,
        arrival: int,
        budget: int = 0,
    ) -> None:
        _fill_plain(self, oid, owner, is_buy, price, qty, arrival)
        self.kind = kind
        self.display = display
        self.tif = tif
        self.expire_at = expire_at
        self.post_only = post_only
        self.stp = stp
        self.stop_price = stop_price
        self.budget = budget


def new_order(  # noqa: PLR0917 - the full field list, positional like SpecialOrder
    oid: OrderId,
    owner: Owner,
    is_buy: bool,
    kind: OrderKind,
    price: int | None,
    qty: int,
    display: int,
    tif: TimeInForce,
    expire_at: int | None,
    post_only: PostOnly | None,
    stp: StpMode,
    stop_price: int | None,
    arrival: int,
    budget: int = 0,
) -> Order:
    """Return a plain ``Order``, or a ``SpecialOrder`` when any field is off its default.

    Args:
        oid: Order id.
        owner: Owner account.
        is_buy: Buy side.
        kind: Order kind.
        price: Limit price in ticks, or None.
        qty: Open quantity in lots.
        display: Iceberg slice size in lots, 0 for a plain order.
        tif: Time in force.
        expire_at: GTD expiry in milliseconds, or None.
        post_only: Post-only mode, or None.
        stp: Self-trade prevention mode.
        stop_price: Trigger price in ticks, or None.
        arrival: Arrival number.
        budget: Market-buy spending cap in tick-lots, 0 for none.
    """
    if (
        kind is _LIMIT
        and tif is _GTC
        and stp is _STP_NONE
        and not display
        and not budget
        and expire_at is None
        and post_only is None
        and stop_price is None
    ):
        return plain_order(oid, owner, is_buy, price, qty, arrival)
    return SpecialOrder(
        oid,
        owner,
        is_buy,
        kind,
        price,
        qty,
        display,
        tif,
        expire_at,
        post_only,
        stp,
        stop_price,
        arrival,
        budget,
    )


class Level:
    """One price level: a FIFO of orders and the sum of their visible quantity in lots."""

    __slots__ = ("count", "head", "price", "tail", "total")

    # No ``__init__``, like ``Order``: ``new_level`` or ``BookSide.append`` fills the slots.
    price: int
    head: Order | None
    tail: Order | None
    total: int
    count: int

    def orders(self) -> Iterator[Order]:
        """Yield the level's orders in queue order."""
        o = self.head
        while o is not None:
            yield o
            o = o.next


def new_level(price: int) -> Level:
    """Return an empty level at ``price`` (ticks)."""
    lv = Level()
    lv.price = price
    lv.head = lv.tail = None
    lv.total = lv.count = 0
    return lv


class BookSide:
    """The bids or the asks: levels by key, and a lazy heap of keys (best = smallest)."""

    __slots__ = ("heap", "is_bid", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, Level] = {}
        self.heap: list[int] = []

    def key(self, price: int) -> int:
        """Return the heap key of a price on this side."""
        return -price if self.is_bid else price

    def best(self) -> Level | None:
        """Return the best level, dropping stale heap keys on the way."""
        heap = self.heap
        levels = self.levels
        while heap:
            lv = levels.get(heap[0])
            if lv is not None:
                return lv
            heappop(heap)
        return None

    def append(self, o: Order) -> None:
        """Queue ``o`` at the back of the level at its price (``o.visible`` must be set)."""
        price = o.price
        assert price is not None
        k = -price if self.is_bid else price
        levels = self.levels
        lv = levels.get(k)
        if lv is None:
            # new_level inlined, with this order as the only one.
            lv = levels[k] = Level()
            lv.price = price
            lv.head = lv.tail = o
            lv.total = o.visible
            lv.count = 1
            o.prev = o.next = None
            heap = self.heap
            if len(heap) > 2 * len(levels) + _STALE_HEAP_SLACK:
                heap[:] = list(levels)
                heapify(heap)
            else:
                heappush(heap, k)
            return
        tail = lv.tail
        assert tail is not None
        tail.next = o
        o.prev = tail
        o.next = None
        lv.tail = o
        lv.total += o.visible
        lv.count += 1

    def load(self, orders: list[Order]) -> None:
        """Fill an empty side with ``orders`` (visible set) in arrival order, which is each
        level's queue order: a restore's bulk ``append`` (the heap is built once).

        Raises:
            ValueError: The side is not empty, an order is on the other side, or two orders
                of a level are not in increasing arrival order.
        """
        if self.levels:
            raise ValueError("load into a side that is not empty")
        levels = self.levels
        is_bid = self.is_bid
        for o in orders:
            price = o.price
            if o.is_buy is not is_bid or price is None:
                raise ValueError(f"order {o.id} does not belong on this side")
            k = -price if is_bid else price
            lv = levels.get(k)
            o.next = None
            if lv is None:
                lv = levels[k] = new_level(price)
                lv.head = o
                o.prev = None
            else:
                tail = lv.tail
                assert tail is not None
                if tail.arrival >= o.arrival:
                    raise ValueError(f"order {o.id} is not after {tail.id} in arrival order")
                tail.next = o
                o.prev = tail
            lv.tail = o
            lv.total += o.visible
            lv.count += 1
        self.heap[:] = list(levels)
        heapify(self.heap)

    def unlink(self, o: Order, lv: Level) -> None:
        """Take ``o`` out of its level ``lv``; drop the level if it empties."""
        prev = o.prev
        nxt = o.next
        if prev is None:
            lv.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            lv.tail = prev
        else:
            nxt.prev = prev
        o.prev = o.next = None
        lv.total -= o.visible
        lv.count -= 1
        if lv.count == 0:
            k = -lv.price if self.is_bid else lv.price
            del self.levels[k]
            heap = self.heap
            if heap and heap[0] == k:
                heappop(heap)

    def level_of(self, o: Order) -> Level:
        """Return the level ``o`` rests in."""
        price = o.price
        assert price is not None
        return self.levels[-price if self.is_bid else price]

    def sorted_levels(self) -> list[Level]:
        """Return the levels best first (O(L log L); for queries, not the hot path)."""
        return [self.levels[k] for k in sorted(self.levels)]
