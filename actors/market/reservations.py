"""Reservation requirements of commands: what the ledger locks before matching.

Rule (ARCHITECTURE.md, Ledger): a buy locks `notional(limit price, qty) + max fee` quote
atoms; a sell locks `qty * lot_size` base atoms; a budget buy (market buy, stop-market buy)
locks its budget in quote atoms plus the maximum fee on it. Market buys by quantity get a
protection budget from the best ask (stop price for stops) and `max_slippage_bps`.
"""

from __future__ import annotations

import dataclasses

from actors.accounts import AccountId
from actors.contracts import Reservation
from actors.engine import Amend, MarketSpec, NewOrder, OrderKind, Side, TickLots
from actors.engine.spec import BPS_DENOMINATOR
from actors.engine.views import OrderView
from actors.ledger import rules as ledger_rules

# The protection of market buys by quantity when the market actor is given none (basis
# points): their budget is the best ask plus 5 %.
DEFAULT_MAX_SLIPPAGE_BPS = 500


def required_reservation(  # noqa: PLR0917 (same signature as the ledger's)
    spec: MarketSpec,
    side: str,
    kind: str,
    price_ticks: int | None,
    qty_lots: int | None,
    quote_budget_tick_lots: int | None,
) -> int:
    """Return the atoms to lock for an order; 0 for a market buy without a budget.

    Delegates to the ledger's rule (`actors.ledger.rules.required_reservation`), which
    decides; a market buy with neither budget nor limit (empty book) needs nothing.
    """
    if side == "buy" and kind in ("market", "stop_market") and quote_budget_tick_lots is None:
        return 0
    return ledger_rules.required_reservation(
        spec, side, kind, price_ticks, qty_lots, quote_budget_tick_lots
    )


def protection_budget(ref_price_ticks: int, qty_lots: int, max_slippage_bps: int) -> int:
    """Return `ceil(ref * (1 + bps / 10^4)) * qty`, a market buy's budget in tick-lots."""
    worst = -(-ref_price_ticks * (BPS_DENOMINATOR + max_slippage_bps) // BPS_DENOMINATOR)
    return int(worst * qty_lots)


def _asset(spec: MarketSpec, side: str) -> str:
    return spec.base_asset if side == "sell" else spec.quote_asset


_BUDGET_KINDS = (OrderKind.MARKET, OrderKind.STOP_MARKET)


def needs_book(command: object) -> bool:
    """Return whether a command is a market buy by quantity (budget from the book)."""
    return (
        type(command) is NewOrder
        and command.side is Side.BUY
        and command.kind is OrderKind.MARKET
        and command.quote_qty is None
    )


def budget_of(command: NewOrder, best_ask: int | None, max_slippage_bps: int) -> int | None:
    """Return the quote budget (tick-lots) of a market or stop-market buy, else None.

    A budget the trader set (`quote_qty`) is kept; a buy by quantity gets the protection
    budget from the best ask (market) or its stop price (stop-market), or None for a
    market buy facing an empty book (it cancels `no_liquidity` and needs nothing).
    """
    if command.side is not Side.BUY or command.kind not in _BUDGET_KINDS:
        return None
    if command.quote_qty is not None:
        return int(command.quote_qty)
    ref = command.stop_price if command.kind is OrderKind.STOP_MARKET else best_ask
    if ref is None or command.qty is None:
        return None
    return protection_budget(int(ref), int(command.qty), max_slippage_bps)


def protect(
    command: NewOrder, best_ask: int | None, max_slippage_bps: int
) -> tuple[NewOrder, int | None]:
    """Return the command the engine gets and its budget (see `budget_of`), else None.

    A buy by quantity gets that budget as its `quote_qty`: the engine then stops it at
    qty or budget, whichever binds first. The market actor and any model of it (the chaos
    test's oracle) call this one rule, so both feed the engine the same command.
    """
    budget = budget_of(command, best_ask, max_slippage_bps)
    if budget is not None and command.quote_qty is None:
        command = dataclasses.replace(command, quote_qty=TickLots(budget))
    return command, budget


def for_new(
    spec: MarketSpec, account_id: AccountId, command: NewOrder, budget: int | None
) -> Reservation:
    """Return the reservation of a new order (`budget`: see `budget_of`)."""
    side = command.side._value_
    kind = command.kind._value_
    if budget is not None:
        amount = required_reservation(spec, side, kind, None, None, budget)
    else:
        amount = required_reservation(spec, side, kind, command.price, command.qty, None)
    return Reservation(
        market=spec.symbol, order_id=command.id, account_id=account_id,
        asset=_asset(spec, side), amount_atoms=amount, side=side,
        limit_price_ticks=command.price, qty_lots=command.qty, quote_budget_tick_lots=budget,
    )  # fmt: skip


def new_order_too_large(spec: MarketSpec, command: NewOrder, budget: int | None) -> bool:
    """Return whether a new order's terms (`budget`: see `budget_of`) exceed the amount
    bounds (`actors.ledger.rules.exceeds_amount_bounds`): refused `amount_too_large`."""
    return ledger_rules.exceeds_amount_bounds(
        spec, command.side._value_, command.kind._value_, command.price, command.qty, budget
    )


def _amended_terms(command: Amend, view: OrderView) -> tuple[int | None, int]:
    """Return an amend's new (limit price, open qty): each the order's own when not set."""
    qty = int(command.qty) if command.qty is not None else int(view.remaining_qty)
    return (command.price if command.price is not None else view.price), qty


def amend_too_large(spec: MarketSpec, command: Amend, view: OrderView) -> bool:
    """Return whether an amend's new terms exceed the amount bounds (a stop-market buy's
    budget, which an amend cannot change, was checked when it was placed)."""
    price, qty = _amended_terms(command, view)
    return ledger_rules.exceeds_amount_bounds(
        spec, view.side.value, view.kind.value, price, qty, None
    )


def for_amend(
    spec: MarketSpec,
    account_id: AccountId,
    command: Amend,
    view: OrderView,
    max_slippage_bps: int,
) -> Reservation | None:
    """Return the extra reservation an amend needs when it raises the requirement.

    A stop-market buy is bound by its budget, which an amend cannot change: nothing extra.
    """
    side = view.side.value
    if view.kind is OrderKind.STOP_MARKET and view.side is Side.BUY:
        return None
    new_price, new_qty = _amended_terms(command, view)
    # The ledger's rule adds the atom that fee rounding on the cumulative notional can need.
    extra = ledger_rules.amend_reservation(
        spec, side, view.kind.value, (view.price, int(view.remaining_qty)), (new_price, new_qty)
    )
    if extra <= 0:
        return None
    return Reservation(
        market=spec.symbol, order_id=view.id, account_id=account_id,
        asset=_asset(spec, side), amount_atoms=extra, side=side,
        limit_price_ticks=new_price, qty_lots=new_qty,
    )  # fmt: skip
