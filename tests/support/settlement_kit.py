"""Helpers of the settlement tests: batch plans made from stored trades, without the
planner (the records keep whatever deltas a plan carries)."""

from __future__ import annotations

from collections.abc import Sequence

from actors.settlement.planner import BatchPlan, Instruction
from actors.settlement.trades import FEE_VAULT, SettleTrade

SIGNATURES = [str(d) * 88 for d in range(1, 10)]
"""Distinct well-formed transaction signatures (88 characters)."""


def _moves(t: SettleTrade) -> Instruction:
    buyer, seller = (t.taker, t.maker) if t.taker_side == "buy" else (t.maker, t.taker)
    fees = t.maker_fee_atoms + t.taker_fee_atoms
    return (((buyer, "base"), t.base_atoms), ((seller, "base"), -t.base_atoms),
            ((seller, "quote"), t.quote_atoms), ((FEE_VAULT), fees),
            ((buyer, "quote"), -t.quote_atoms - fees))  # fmt: skip


def plan_of(trades: Sequence[SettleTrade], *, netted: bool) -> BatchPlan:
    """Return a plan of `trades` (in seq order): netted, one instruction of every move
    (not summed: the records do not care); unnetted, one instruction per trade."""
    per_trade = tuple(_moves(t) for t in trades)
    instructions = (tuple(m for ix in per_trade for m in ix),) if netted else per_trade
    return BatchPlan(tuple(trades), instructions, trades[0].seq, trades[-1].seq, 0.0)
