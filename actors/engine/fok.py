"""Fill-or-kill feasibility: walk the book as matching would, changing nothing."""

from __future__ import annotations

from collections import deque

from actors.engine.book import BookSide, Order
from actors.engine.types import StpMode


def fok_fillable(o: Order, opp: BookSide, limit_key: int) -> bool:
    """Return whether ``o`` would fill completely against ``opp`` right now.

    The walk simulates iceberg replenishment (a consumed slice goes to the back of its level
    with ``min(display, reserve)``), so an own order met after a replenished slice is seen
    exactly when matching would meet it. STP: ``none`` trades with own orders,
    ``cancel_oldest`` skips them (they would be cancelled), any other mode fails on meeting
    one before the order is complete.

    Args:
        o: The incoming order; ``o.qty`` is the quantity to fill, in lots.
        opp: The opposite side of the book.
        limit_key: Only levels whose key is ``<= limit_key`` cross.
    """
    need = o.qty
    owner = o.owner
    stp = o.stp
    for k in sorted(opp.levels):
        if k > limit_key:
            break
        queue = deque((m, m.visible, m.qty) for m in opp.levels[k].orders())
        while queue:
            m, visible, total = queue.popleft()
            if stp is not StpMode.NONE and m.owner == owner:
                if stp is StpMode.CANCEL_OLDEST:
                    continue
                return False
            if need <= visible:
                return True
            need -= visible
            total -= visible
            if total > 0:
                queue.append((m, min(m.display, total), total))
    return False
