"""The actor messages survive pickling (Ray's transport) field for field."""

from __future__ import annotations

import pickle

import pytest

from actors.contracts import (
    AmendOrder,
    BalanceView,
    CancelAllOrders,
    CancelOrder,
    LedgerEntry,
    OrderRequest,
    OrderResult,
    PlaceOrder,
    Reservation,
)
from actors.engine import (
    Accepted,
    Fill,
    OrderKind,
    PostOnly,
    Side,
    StpMode,
    TimeInForce,
)

ACCEPTED = Accepted(1, "o1", "7", Side.BUY, OrderKind.LIMIT)
FILL = Fill(2, "m1", "o1", "8", "7", 100, 3, Side.BUY)
PLACE = PlaceOrder("o1", Side.BUY, OrderKind.LIMIT, qty=3, price=100, tif=TimeInForce.GTD,
                   expire_at=10**12, post_only=PostOnly.SLIDE, stp=StpMode.CANCEL_BOTH)  # fmt: skip

MESSAGES = [
    OrderRequest("r1", 7, PLACE, client_order_id="c1", digest="d"),
    OrderRequest("r2", 8, CancelOrder("o1")),
    OrderRequest("r3", 8, AmendOrder("o1", qty=2)),
    OrderRequest("r4", 8, CancelAllOrders()),
    OrderResult("r1", True, None, "o1", 12, (ACCEPTED, FILL), duplicate=True, ts_ms=5),
    OrderResult("r2", False, "insufficient_funds"),
    LedgerEntry(12, (ACCEPTED, FILL), Reservation("SOL-USDC", "o1", 7, "USDC", 9, "buy", 100, 3)),
    Reservation("SOL-USDC", "o1", 7, "USDC", 10**30, "buy", 101, 5, None),
    Reservation("SOL-USDC", "o2", 8, "USDC", 0, "buy", quote_budget_tick_lots=9),
    BalanceView("SOL", 1, 2),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_messages_round_trip_through_pickle(message: object, protocol: int) -> None:
    copy = pickle.loads(pickle.dumps(message, protocol))
    assert copy == message and type(copy) is type(message)
