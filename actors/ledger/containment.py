"""What a ledger shard does with a journal entry it cannot apply: it sets the entry's market
aside, so that one market's bad entry never takes down the shard's other markets or its
balance reads (docs/operations.md, "When a market or shard fails").

A market set aside at seq `s` keeps its entries before `s` applied; none from `s` on is
applied, and the market's own calls (reserve, apply, sync, release_orphans) are refused,
changing nothing, until an operator readmits it. The record is in memory: a restarted shard
meets the same entry on its way up and sets the market aside again.
"""

from __future__ import annotations

from typing import Any

from actors.contracts import UnavailableError
from actors.ledger.rules import LedgerRequestError


class EntryApplyError(RuntimeError):
    """Applying one journal entry failed: the shard sets its market aside."""

    def __init__(self, market: str, seq: int, cause: BaseException) -> None:
        super().__init__(f"{market} journal seq {seq}: {type(cause).__name__}: {cause}")
        self.market = market
        self.seq = seq


class MarketSetAsideError(LedgerRequestError, UnavailableError):
    """The shard set this market's journal aside (an entry it cannot apply): it refuses the
    market's calls, changing nothing, until an operator readmits it."""


class ShardUnavailableError(UnavailableError):
    """The shard cannot load or rebuild its state (the cause is attached and in `health`)."""


class SetAside:
    """The markets one shard set aside: `{symbol: (first seq not applied, why)}`.

    Args:
        shard_id: The shard's number (for messages).
    """

    def __init__(self, shard_id: int) -> None:
        self._shard_id = shard_id
        self._markets: dict[str, tuple[int, str]] = {}

    def __bool__(self) -> bool:
        return bool(self._markets)

    def add(self, exc: EntryApplyError) -> None:
        """Set the market of a failed entry aside.

        Raises:
            EntryApplyError: `exc` itself when the market was already set aside: its later
                entries are never applied, so the failure lies elsewhere (a bug).
        """
        if exc.market in self._markets:
            raise exc
        self._markets[exc.market] = (exc.seq, str(exc))

    def readmit(self, market: str) -> None:
        """Take a market back (its entries are applied again from the shard's mark)."""
        self._markets.pop(market, None)

    def check(self, market: str) -> None:
        """Refuse a call of a market set aside.

        Raises:
            MarketSetAsideError: The market is set aside.
        """
        if market in self._markets:
            seq, why = self._markets[market]
            raise MarketSetAsideError(
                f"ledger shard {self._shard_id} set market {market} aside at journal seq "
                f"{seq} ({why}); see `clob status`"
            )

    def before(self, market: str, before: int | None) -> int | None:
        """Return the seq a catch-up of the market must stop before (None: no end)."""
        if market not in self._markets:
            return before
        stop = self._markets[market][0]
        return stop if before is None else min(before, stop)

    def head(self, market: str, head: int) -> int:
        """Return how far the shard may take the market: `head`, or up to the entry before
        the one it could not apply."""
        if market not in self._markets:
            return head
        return min(head, self._markets[market][0] - 1)

    def report(self) -> dict[str, dict[str, Any]]:
        """Return `{market: {"seq", "error"}}` for the shard's `health`."""
        return {m: {"seq": seq, "error": why} for m, (seq, why) in self._markets.items()}
