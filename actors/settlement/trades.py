"""The trade as settlement sees it and the vaults it moves.

STAND-IN (part C): only the records of the design, so that `records.py` can be built and
tested before part A's module is merged; part A's file replaces this one whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors.accounts import AccountId

Side = Literal["base", "quote"]
VaultKey = tuple[AccountId | None, Side]
"""A vault of a market: (account, side); (None, "quote") is the market's quote fee vault."""

FEE_VAULT: VaultKey = (None, "quote")


@dataclass(frozen=True, slots=True)
class SettleTrade:
    """One trade to settle, in atoms (a row of `trades` with its market's lot size)."""

    seq: int  # trades.seq (the fill's engine event seq)
    maker: AccountId
    taker: AccountId
    taker_side: Literal["buy", "sell"]
    base_atoms: int
    quote_atoms: int
    maker_fee_atoms: int  # negative: rebate
    taker_fee_atoms: int
    executed_at_ms: int

Instruction = tuple[tuple[VaultKey, int], ...]
"""One `settle` instruction's entries: (vault, delta in atoms), in order."""
