"""The batcher's adapters beside the chain: `PgSettlementStore` (the store port over
`records.py` and one PostgreSQL connection) and `StreamPublisher` (status changes to the
accounts' streams through a `RedisSink`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

import actors.ledger.store as ledger_store
from actors.accounts import AccountId
from actors.settlement import records
from actors.settlement.cut import cut
from actors.settlement.planner import BatchPlan
from actors.settlement.ports import MarketInfo, Prepared, StatusChange
from actors.settlement.records import AttemptRow, MarketState, SettlementJob
from actors.settlement.tables import load_table_address, save_table_address
from actors.settlement.trades import SettleTrade
from actors.stream.messages import settlement_messages
from actors.stream.sink import RedisSink


class PgSettlementStore:
    """The settlement records over one connection, opened on first use and again after
    a failure (`close`).

    Args:
        database_url: PostgreSQL.
    """

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._conn: asyncpg.Connection | None = None

    async def conn(self) -> asyncpg.Connection:
        """Return the connection, opening it if needed."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await ledger_store.connect(self._url)
        return self._conn

    async def close(self) -> None:
        """Close the connection (a failed pass starts on a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close()
            except Exception:  # closing a broken connection: nothing more to do
                conn.terminate()

    async def markets(self, batchers: int, index: int) -> list[tuple[int, str, str, str]]:
        """Return the markets of batcher `index` whose two assets have mints: (id, symbol,
        base mint, quote mint)."""
        rows = await (await self.conn()).fetch(
            "SELECT m.market_id, m.symbol, b.mint, q.mint FROM markets m "
            "JOIN assets b ON b.asset_id = m.base_asset_id "
            "JOIN assets q ON q.asset_id = m.quote_asset_id "
            "WHERE b.mint IS NOT NULL AND q.mint IS NOT NULL AND m.market_id % $1 = $2 "
            "ORDER BY m.market_id", batchers, index,
        )  # fmt: skip
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]

    async def record_vault(
        self, market: MarketInfo, account: AccountId, side: str, address: str
    ) -> None:
        """Record a vault the batcher registered among the deposit addresses (the deposit
        listener watches them; reconciliation counts them)."""
        mint = market.base_mint if side == "base" else market.quote_mint
        await (await self.conn()).execute(
            "INSERT INTO deposit_addresses (account_id, asset_id, address) "
            "SELECT $1, asset_id, $3 FROM assets WHERE mint = $2 ON CONFLICT DO NOTHING",
            int(account), mint, address,
        )  # fmt: skip

    async def table_address(self, market_id: int) -> str | None:
        """Return the market's lookup table address, if one was recorded."""
        return await load_table_address(await self.conn(), market_id)

    async def save_table_address(self, market_id: int, address: str) -> None:
        """Record the market's lookup table address."""
        await save_table_address(await self.conn(), market_id, address)

    async def market_state(self, market_id: int, chain_market_id: int) -> MarketState:
        return await records.market_state(await self.conn(), market_id, chain_market_id)

    async def raise_batch_floor(self, market_id: int, floor: int) -> None:
        await records.raise_batch_floor(await self.conn(), market_id, floor)

    async def trades_after(self, market_id: int, after_seq: int, limit: int) -> list[SettleTrade]:
        return await records.trades_after(await self.conn(), market_id, after_seq, limit)

    async def create(self, market_id: int, plan: BatchPlan, netted: bool) -> SettlementJob:
        return await records.create(await self.conn(), market_id, plan, netted=netted)

    async def unfinished(self, market_ids: Sequence[int]) -> list[SettlementJob]:
        return await records.unfinished(await self.conn(), market_ids)

    async def attempts(self, settlement_id: int) -> list[AttemptRow]:
        return await records.attempts(await self.conn(), settlement_id)

    async def add_attempt(self, settlement_id: int, tx: Prepared) -> int:
        return await records.add_attempt(await self.conn(), settlement_id, tx.signature,
                                         tx.wire, tx.cu_price, tx.cu_limit,
                                         tx.last_valid_height)  # fmt: skip

    async def attempt_failed(self, settlement_id: int, attempt: int, error: str) -> None:
        await records.mark_attempt(await self.conn(), settlement_id, attempt, "error", error)

    async def transition(self, settlement_id: int, old: str, new: str, **fields: Any) -> bool:
        return await records.transition(await self.conn(), settlement_id, old, new, **fields)

    async def cut(self, settlement_id: int) -> int | None:
        return await cut(await self.conn(), settlement_id)

    async def accounts_of(self, settlement_id: int) -> dict[int, list[int]]:
        found = await records.accounts_of(await self.conn(), settlement_id)
        return {int(account): seqs for account, seqs in found.items()}


class StreamPublisher:
    """Publishes a settlement's status changes to its accounts' streams (WebSocket
    `settlements`); does nothing without Redis.

    Args:
        sink: The Redis sink, or None.
    """

    def __init__(self, sink: RedisSink | None) -> None:
        self._sink = sink

    def publish(
        self, market: MarketInfo, job: SettlementJob, change: StatusChange,
        accounts: Mapping[int, list[int]],
    ) -> None:  # fmt: skip
        """Queue one message per account of the settlement (never blocks)."""
        if self._sink is None:
            return
        ts = int(time.time() * 1000)
        messages = settlement_messages(
            dict(accounts), job.settlement_id, market.symbol, change.status, change.signature,
            change.slot, ts,
        )  # fmt: skip
        for channel, data in messages:
            self._sink.publish(channel, data)
