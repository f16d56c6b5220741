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

from actors.engine.types import AccountId, OrderId, OrderKind, PostOnly, StpMode, TimeInForce

_STALE_HEAP_SLACK = 32


class Order:
    """A live order: resting in the book, pending as a stop, or being matched.

    Quantities are in lots, prices in ticks, times in milliseconds. ``qty`` is the whole open
    quantity (for an iceberg, visible slice plus reserve) and ``visible`` the slice queued in
    the book; ``display`` is the iceberg slice size, 0 for a plain order. ``arrival`` is the
    per-market arrival number that orders the queue.
    """

    __slots__ = (
        "arrival",
        "budget",
        "display",
        "expire_at",
        "id",
        "is_buy",
        "kind",
        "next",
        "owner",
        "post_only",
        "prev",
        "price",
        "qty",
        "stop_price",
        "stp",
        "tif",
        "visible",
    )

    def __init__(  # noqa: PLR0917 - positional on purpose: built once per order, hot path
        self,
        oid: OrderId,
        owner: AccountId,
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
        self.id = oid
        self.owner = owner
        self.is_buy = is_buy
        self.kind = kind
        self.price = price
        self.qty = qty
        self.visible = 0
        self.display = display
        self.tif = tif
        self.expire_at = expire_at
        self.post_only = post_only
        self.stp = stp
        self.stop_price = stop_price
        self.arrival = arrival
        self.budget = budget  # market/stop-market buy spending cap in tick-lots; 0 = none
        self.prev: Order | None = None
        self.next: Order | None = None


class Level:
    """One price level: a FIFO of orders and the sum of their visible quantity in lots."""

    __slots__ = ("count", "head", "price", "tail", "total")

    def __init__(self, price: int) -> None:
        self.price = price
        self.head: Order | None = None
        self.tail: Order | None = None
        self.total = 0
        self.count = 0

    def orders(self) -> Iterator[Order]:
        """Yield the level's orders in queue order."""
        o = self.head
        while o is not None:
            yield o
            o = o.next


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
        lv = self.levels.get(k)
        if lv is None:
            lv = self.levels[k] = Level(price)
            heap = self.heap
            if len(heap) > 2 * len(self.levels) + _STALE_HEAP_SLACK:
                heap[:] = list(self.levels)
                heapify(heap)
            else:
                heappush(heap, k)
            lv.head = o
            o.prev = None
        else:
            tail = lv.tail
            assert tail is not None
            tail.next = o
            o.prev = tail
        o.next = None
        lv.tail = o
        lv.total += o.visible
        lv.count += 1

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
