"""The market actor's protection budget of market buys (`reservations.protect`): the rule
both the actor and the chaos test's oracle apply before the engine sees a command."""

from __future__ import annotations

from typing import Any

import pytest

from actors.market.reservations import protect

BUY = {"type": "new", "id": "o1", "side": "buy", "kind": "market", "qty": 3}


@pytest.mark.parametrize(
    ("cmd", "best_ask", "budget", "quote_qty"),
    [
        (BUY, 100, 315, 315),  # ceil(100 * 1.05) * 3
        (BUY, 99, 312, 312),  # ceil(99 * 1.05) = ceil(103.95) = 104
        (BUY, None, None, None),  # empty book: nothing to protect, cancels no_liquidity
        ({**BUY, "quote_qty": 50}, 100, 50, 50),  # the trader's budget is kept
        ({**BUY, "kind": "stop_market", "stop_price": 200}, 100, 630, 630),  # from the stop
        ({**BUY, "side": "sell"}, 100, None, None),
        ({**BUY, "kind": "limit", "price": 101}, 100, None, None),
    ],
)
def test_buy_by_quantity_gets_the_slippage_budget_as_quote_qty(
    cmd: dict[str, Any], best_ask: int | None, budget: int | None, quote_qty: int | None
) -> None:
    fed = dict(cmd)
    assert protect(fed, best_ask, 500) == budget
    assert fed.get("quote_qty") == quote_qty
    assert {k: v for k, v in fed.items() if k != "quote_qty"} == {
        k: v for k, v in cmd.items() if k != "quote_qty"
    }
