"""Settlement's trade vocabulary: the vault keys and a settle instruction's entries.

A placeholder of part A's module with only the aliases `tx.py` needs; the merge keeps
part A's full module (`SettleTrade`, `trade_deltas`), which defines these the same way.
"""

from __future__ import annotations

from typing import Literal

from actors.accounts import AccountId

Side = Literal["base", "quote"]
VaultKey = tuple[AccountId | None, Side]
"""A vault of a market: (account, side); (None, side) is that side's fee vault."""
FEE_VAULT: VaultKey = (None, "quote")
Instruction = tuple[tuple[VaultKey, int], ...]
"""One settle instruction's entries: (vault, delta in atoms), in a deterministic order."""
