"""The actor messages survive pickling (Ray's transport) field for field."""

from __future__ import annotations

import pickle

import pytest

from actors.contracts import BalanceView, OrderRequest, OrderResult, Reservation

MESSAGES = [
    OrderRequest("r1", 7, {"type": "new", "id": "o1", "qty": 3}, client_order_id="c1"),
    OrderRequest("r2", 8, {"type": "cancel", "id": "o1"}),
    OrderResult("r1", True, None, "o1", 12, [{"type": "accepted", "id": "o1"}], duplicate=True),
    OrderResult("r2", False, "insufficient_funds"),
    Reservation("SOL-USDC", "o1", 7, "USDC", 10**30, "buy", 101, 5, None),
    Reservation("SOL-USDC", "o2", 8, "USDC", 0, "buy", quote_budget_tick_lots=9),
    BalanceView("SOL", 1, 2),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_messages_round_trip_through_pickle(message: object, protocol: int) -> None:
    copy = pickle.loads(pickle.dumps(message, protocol))
    assert copy == message and type(copy) is type(message)
