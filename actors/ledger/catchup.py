"""How a ledger shard reads what it lacks from the journal table (the market journals are
the record; a shard's tables only shorten this catch-up).

An entry that cannot be decoded or applied raises `EntryApplyError`: the shard sets its
market aside (`containment.py`) instead of failing as a whole.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from actors.contracts import LedgerEntry
from actors.engine import MarketSpec
from actors.journal_codec import ledger_entry
from actors.ledger import store
from actors.ledger.containment import EntryApplyError, SetAside
from actors.ledger.core import LedgerCore


class JournalCatchUp:
    """Applies journal entries after a shard's marks, as stored in the journal table.

    Args:
        registry: The shard's symbol and id maps.
        set_aside: The markets the shard set aside (read up to where they were).
    """

    def __init__(self, registry: store.Registry, set_aside: SetAside) -> None:
        self._registry = registry
        self._set_aside = set_aside

    async def catch_up(
        self, conn: asyncpg.Connection, core: LedgerCore, market: str, before: int | None
    ) -> None:
        """Apply the market's journal entries after the mark (and before `before`, and
        before the seq it was set aside at)."""
        before = self._set_aside.before(market, before)
        spec = await self._registry.spec(conn, market)
        market_id = self._registry.market_ids[market]
        for seq, events, raw in await store.journal_entries(
            conn, market_id, core.mark(market), before
        ):
            _apply_stored(core, spec, market, seq, events, raw)

    async def rebuild(
        self, conn: asyncpg.Connection, shard_id: int, shard_count: int
    ) -> LedgerCore:
        """Load a shard's state from its tables, catch every market up from the journal and
        write the result, in one transaction (the shard's recovery, after its epoch)."""
        core = await store.load(conn, self._registry, shard_id, shard_count)
        core.replaying = True  # the markets are replayed one after the other
        async with conn.transaction():
            for market in sorted(self._registry.market_ids):
                await self.catch_up(conn, core, market, None)
            core.check_balances()
            await store.save(conn, self._registry, core, core.take_changes())
        core.replaying = False
        return core

    async def all(self, conn: asyncpg.Connection, core: LedgerCore) -> bool:
        """Apply every market's entries after the shard's mark up to the journal's head as
        it is now; return whether any market was behind.

        A market answers its callers once their commands are journaled; the applies it
        sends the shards may still be on their way (docs/pipeline.md). Reads call this
        first, so they see every command answered before they began; an apply that
        arrives afterwards skips what is at or below the mark.
        """
        behind = False
        registry = self._registry
        for market_id, journal_head in (await store.journal_heads(conn)).items():
            if market_id not in registry.market_symbols:
                await registry.refresh(conn)
            market = registry.market_symbols[market_id]
            head = self._set_aside.head(market, journal_head)
            if core.mark(market) < head:
                behind = True
                await self.catch_up(conn, core, market, head + 1)
                core.advance(market, head)
        return behind


def apply_entry(core: LedgerCore, spec: MarketSpec, market: str, entry: LedgerEntry) -> None:
    """Apply one journal entry (skipped at or below the mark)."""
    try:
        core.apply_events(spec, market, entry.seq, entry.events, entry.reservation)
    except Exception as exc:  # a journaled entry this shard cannot apply: contain it
        raise EntryApplyError(market, entry.seq, exc) from exc


def _apply_stored(  # noqa: PLR0917 (a stored row's parts)
    core: LedgerCore, spec: MarketSpec, market: str, seq: int, events: Any, raw: Any
) -> None:
    """Apply a journal row read from the table (its stored form typed here, so that a row
    that does not decode is contained like one that does not apply)."""
    try:
        entry = ledger_entry(market, seq, events, raw)
    except Exception as exc:
        raise EntryApplyError(market, seq, exc) from exc
    apply_entry(core, spec, market, entry)
