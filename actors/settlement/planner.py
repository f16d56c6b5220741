"""Settlement batches: which trades go into one transaction, with which deltas.

STAND-IN (part C): only the records of the design, so that `records.py` can be built and
tested before part A's module (the `Planner`) is merged; part A's file replaces this one
whole.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.settlement.trades import Instruction, SettleTrade


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """A closed batch: its trades in seq order and its instructions (netted: one;
    unnetted: one per trade)."""

    trades: tuple[SettleTrade, ...]
    instructions: tuple[Instruction, ...]
    first_seq: int
    last_seq: int
    opened_at: float  # monotonic time of the first trade's intake, s
