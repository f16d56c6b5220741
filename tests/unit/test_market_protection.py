"""The market actor's protection budget of market buys (`reservations.protect`): the rule
both the actor and the chaos test's oracle apply before the engine sees a command."""

from __future__ import annotations

import dataclasses

import pytest

from actors.engine import Lots, Millis, NewOrder, OrderId, OrderKind, Owner, Side, TickLots, Ticks
from actors.market.reservations import protect

BUY = NewOrder(OrderId("o1"), Owner("7"), Side.BUY, OrderKind.MARKET, Millis(1), qty=Lots(3))
STOP = dataclasses.replace(BUY, kind=OrderKind.STOP_MARKET, stop_price=Ticks(200))


@pytest.mark.parametrize(
    ("cmd", "best_ask", "budget", "quote_qty"),
    [
        (BUY, 100, 315, 315),  # ceil(100 * 1.05) * 3
        (BUY, 99, 312, 312),  # ceil(99 * 1.05) = ceil(103.95) = 104
        (BUY, None, None, None),  # empty book: nothing to protect, cancels no_liquidity
        (dataclasses.replace(BUY, quote_qty=TickLots(50)), 100, 50, 50),  # the trader's budget
        (STOP, 100, 630, 630),  # from the stop price
        (dataclasses.replace(BUY, side=Side.SELL), 100, None, None),
        (dataclasses.replace(BUY, kind=OrderKind.LIMIT, price=Ticks(101)), 100, None, None),
    ],
)
def test_buy_by_quantity_gets_the_slippage_budget_as_quote_qty(
    cmd: NewOrder, best_ask: int | None, budget: int | None, quote_qty: int | None
) -> None:
    fed, got = protect(cmd, best_ask, 500)
    assert got == budget
    assert fed.quote_qty == quote_qty
    assert dataclasses.replace(fed, quote_qty=None) == dataclasses.replace(cmd, quote_qty=None)
