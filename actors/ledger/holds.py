"""Holds: funds a ledger shard sets aside in memory for orders not yet journaled.

A market actor reserves before it matches. The shard answers with a hold: the funds leave
what the account can spend, but nothing is written anywhere. The market actor journals the
command together with the reservation it held. When the journal entry reaches the shard
(`LedgerCore.apply_events`), the reservation becomes part of the shard's durable state
(a function of credits and the journal) and the hold goes. A shard that restarts has no
holds; the shard epoch fences the journal so that nothing relies on a lost one
(docs/ARCHITECTURE.md, "Reservations in memory").

Holds are keyed by (market, order id, terms): a retried reserve with the same terms is
the same hold. Each hold remembers the market actor's epoch, so a recovering market
releases exactly the holds of its dead incarnations, and a stale incarnation can no
longer add any.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.accounts import AccountId
from actors.contracts import Reservation, StaleMarketEpochError

__all__ = ["Hold", "HoldKey", "Holds", "StaleMarketEpochError", "terms_key"]

HoldKey = tuple[str, str, str]
"""(market, order id, reservation terms)."""


def terms_key(r: Reservation) -> str:
    """Return the terms of a reservation as the key of idempotent retries."""
    return f"{r.amount_atoms}:{r.limit_price_ticks}:{r.qty_lots}:{r.quote_budget_tick_lots}"


@dataclass(frozen=True, slots=True)
class Hold:
    """Atoms of one account and asset set aside for one reservation."""

    account_id: AccountId
    asset: str
    atoms: int
    market_epoch: int


class Holds:
    """The holds of one shard, with their sum per (account, asset)."""

    def __init__(self) -> None:
        self._holds: dict[HoldKey, Hold] = {}
        self._held: dict[tuple[AccountId, str], int] = {}
        self._market_epochs: dict[str, int] = {}
        # (account, asset) pairs whose held sum changed (`LedgerState.take_touched`).
        self.touched: set[tuple[AccountId, str]] = set()

    def __len__(self) -> int:
        return len(self._holds)

    def held(self, account_id: AccountId, asset: str) -> int:
        """Return the atoms of an account and asset held."""
        return self._held.get((account_id, asset), 0)

    def has(self, key: HoldKey) -> bool:
        """Return True if the hold exists."""
        return key in self._holds

    def check_epoch(self, market: str, market_epoch: int) -> None:
        """Remember the newest epoch of a market; refuse an older one.

        Raises:
            StaleMarketEpochError: `market_epoch` is older than one seen before.
        """
        newest = self._market_epochs.get(market, 0)
        if market_epoch < newest:
            raise StaleMarketEpochError(
                f"market {market} epoch {market_epoch} is stale (epoch {newest} took over)"
            )
        self._market_epochs[market] = market_epoch

    def add(self, key: HoldKey, hold: Hold) -> None:
        """Add a hold (its key must be new)."""
        self._holds[key] = hold
        k = (hold.account_id, hold.asset)
        self._held[k] = self._held.get(k, 0) + hold.atoms
        self.touched.add(k)

    def pop(self, key: HoldKey) -> Hold | None:
        """Remove and return a hold, or None if there is none."""
        hold = self._holds.pop(key, None)
        if hold is not None:
            k = (hold.account_id, hold.asset)
            self.touched.add(k)
            left = self._held[k] - hold.atoms
            if left:
                self._held[k] = left
            else:
                del self._held[k]
        return hold

    def release_market(self, market: str, before_epoch: int) -> int:
        """Drop every hold of a market made by an incarnation older than `before_epoch`;
        refuse holds from those incarnations from now on. Return how many were dropped."""
        self._market_epochs[market] = max(self._market_epochs.get(market, 0), before_epoch)
        stale = [
            key
            for key, hold in self._holds.items()
            if key[0] == market and hold.market_epoch < before_epoch
        ]
        for key in stale:
            self.pop(key)
        return len(stale)
