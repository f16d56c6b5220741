"""A trade as settlement sees it, and the vault deltas it makes (pure).

A trade of a market moves tokens between the vaults of the market's two mints: the
buyer's and the seller's vault of each mint, and the quote fee vault. Every amount is in
atoms of its mint; a negative fee is a rebate. Per mint the deltas of a trade sum to zero,
which is what the program's `settle` checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from actors.accounts import AccountId

Side = Literal["base", "quote"]
"""Which of the market's two mints a vault holds."""

VaultKey = tuple[AccountId | None, Side]
"""A vault of a market: (account, side), or (None, "quote") for the quote fee vault."""

FEE_VAULT: Final[VaultKey] = (None, "quote")
"""The market's quote fee vault: every fee of the market is in quote atoms."""

Instruction = tuple[tuple[VaultKey, int], ...]
"""One `settle` instruction: (vault, delta in atoms of its mint), in `vault_order`."""


@dataclass(frozen=True, slots=True)
class SettleTrade:
    """A committed trade (a row of `trades`), in atoms.

    Attributes:
        seq: The fill's engine event seq (`trades.seq`), increasing per market.
        maker: The resting order's account.
        taker: The incoming order's account (the maker's own for a self-trade).
        taker_side: The taker's side: "buy" makes the taker the buyer.
        base_atoms: Base moved, in base atoms (`qty_lots * lot_size_atoms`), positive.
        quote_atoms: Quote moved before fees, in quote atoms, positive.
        maker_fee_atoms: The maker's fee in quote atoms; negative is a rebate.
        taker_fee_atoms: The taker's fee in quote atoms; negative is a rebate.
        executed_at_ms: When the trade was matched, in ms since the epoch.
    """

    seq: int
    maker: AccountId
    taker: AccountId
    taker_side: Literal["buy", "sell"]
    base_atoms: int
    quote_atoms: int
    maker_fee_atoms: int
    taker_fee_atoms: int
    executed_at_ms: int

    def __post_init__(self) -> None:
        if self.seq < 0:
            raise ValueError(f"trade seq {self.seq} is negative")
        if self.taker_side not in ("buy", "sell"):
            raise ValueError(f"taker_side {self.taker_side!r} is neither buy nor sell")
        if self.base_atoms <= 0 or self.quote_atoms <= 0:
            raise ValueError(f"trade {self.seq} moves no base or no quote")


def trade_deltas(trade: SettleTrade) -> dict[VaultKey, int]:
    """Return the delta of every vault the trade touches (zeros kept; per mint sum 0).

    The buyer gains the base and pays the quote plus its fee; the seller gives the base and
    receives the quote minus its fee; the fee vault gains both fees. A self-trade's
    vaults coincide, so it nets to the fees alone.
    """
    if trade.taker_side == "buy":
        buyer, buyer_fee = trade.taker, trade.taker_fee_atoms
        seller, seller_fee = trade.maker, trade.maker_fee_atoms
    else:
        buyer, buyer_fee = trade.maker, trade.maker_fee_atoms
        seller, seller_fee = trade.taker, trade.taker_fee_atoms
    deltas: dict[VaultKey, int] = {(buyer, "base"): trade.base_atoms}
    deltas[(seller, "base")] = deltas.get((seller, "base"), 0) - trade.base_atoms
    deltas[(buyer, "quote")] = -(trade.quote_atoms + buyer_fee)
    deltas[(seller, "quote")] = deltas.get((seller, "quote"), 0) + trade.quote_atoms - seller_fee
    deltas[FEE_VAULT] = trade.maker_fee_atoms + trade.taker_fee_atoms
    return deltas


def vault_order(key: VaultKey) -> tuple[bool, int, Side]:
    """Sort key of vaults: by (account, side), the fee vault last."""
    account, side = key
    return (account is None, account or 0, side)


def net_deltas(trades: Iterable[SettleTrade]) -> dict[VaultKey, int]:
    """Return the sum of the trades' deltas per vault (zeros kept)."""
    net: dict[VaultKey, int] = {}
    for trade in trades:
        for key, delta in trade_deltas(trade).items():
            net[key] = net.get(key, 0) + delta
    return net


def instruction_of(deltas: Mapping[VaultKey, int]) -> Instruction:
    """Return the instruction moving these deltas: zeros dropped, in `vault_order`.

    The program refuses an empty batch but allows a zero delta, so when every delta is
    zero the first vault stays, with 0.

    Raises:
        ValueError: No vault at all.
    """
    if not deltas:
        raise ValueError("an instruction needs at least one vault")
    ordered = sorted(deltas.items(), key=lambda item: vault_order(item[0]))
    moved = tuple(entry for entry in ordered if entry[1] != 0)
    return moved or (ordered[0],)
