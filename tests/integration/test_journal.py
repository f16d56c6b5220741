"""The market journal adapter against a real PostgreSQL: group commit, fencing, snapshots,
tail streaming."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from actors.engine import MarketSpec
from actors.market.journal import (
    FencedError,
    Journal,
    LostHoldError,
    OrderUpdate,
    TradeRow,
)
from actors.markets_repo import create_market
from tests.support.market_kit import resting_sell_row, tick_row


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection."""
    connection = await asyncpg.connect(db_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _market(conn: asyncpg.Connection) -> int:
    tag = uuid.uuid4().hex[:6].upper()
    spec = MarketSpec(symbol=f"B{tag}-Q{tag}", base_asset=f"B{tag}", quote_asset=f"Q{tag}")
    return (await create_market(conn, spec)).market_id


async def test_append_journals_and_project_writes_orders_trades_and_the_mark(
    db_url: str, conn: asyncpg.Connection
) -> None:
    market_id = await _market(conn)
    acc = await conn.fetchval("INSERT INTO accounts DEFAULT VALUES RETURNING account_id")
    journal = await Journal.open(db_url, market_id)
    try:
        epoch = await journal.acquire_epoch("test")
        maker, taker = f"m-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
        trade = TradeRow(
            seq=3, maker_order_id=maker, taker_order_id=taker, maker_account_id=acc,
            taker_account_id=acc, taker_side="buy", price_ticks=10, qty_lots=2,
            quote_qty_atoms=20, maker_fee_atoms=-1, taker_fee_atoms=1, executed_at_ms=1_000,
        )  # fmt: skip
        update = OrderUpdate(maker, 3, 2, 20, -1, None, "open", None, 3)
        await journal.append(epoch, [tick_row(1), tick_row(2)])
        assert await journal.high_water() == 2
        assert await journal.projection_mark() == 0
        await journal.project(epoch, 2, [resting_sell_row(maker, acc, 1), update], [trade])
        assert await journal.projection_mark() == 2
        row = await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1", maker)
        assert (row["status"], row["open_qty_lots"], row["filled_qty_lots"]) == (
            "partially_filled", 3, 2,
        )  # fmt: skip
        assert (row["filled_quote_atoms"], row["fee_atoms"]) == (20, -1)
        stored = await conn.fetchrow("SELECT * FROM trades WHERE market_id = $1", market_id)
        assert (stored["seq"], stored["quote_qty_atoms"], stored["maker_fee_atoms"]) == (3, 20, -1)
        with pytest.raises(asyncpg.UniqueViolationError):
            await journal.append(epoch, [tick_row(2), tick_row(3)])
        assert await journal.high_water() == 2  # The failed batch left nothing behind.
        bad = dataclasses.replace(resting_sell_row(f"b-{uuid.uuid4().hex}", acc, 4), price_ticks=-1)
        with pytest.raises(asyncpg.CheckViolationError):
            await journal.project(epoch, 3, [bad], [dataclasses.replace(trade, seq=4)])
        assert await journal.projection_mark() == 2  # ... and neither did this one.
        await journal.project(epoch, 1, [], [])
        assert await journal.projection_mark() == 2  # The mark never goes back.
        # Amounts beyond 64 bits (18-decimal assets) stay exact through the JSON rows.
        big, huge = 10**30 + 7, -(10**25 + 3)
        whale = dataclasses.replace(trade, seq=5, quote_qty_atoms=big, maker_fee_atoms=huge)
        grown = OrderUpdate(maker, 1, 1, big, huge, None, "open", None, 5)
        await journal.project(epoch, 3, [grown], [whale])
        row = await conn.fetchrow("SELECT * FROM orders WHERE order_id = $1", maker)
        assert (row["filled_quote_atoms"], row["fee_atoms"]) == (20 + big, -1 + huge)
        stored = await conn.fetchrow(
            "SELECT * FROM trades WHERE market_id = $1 AND seq = 5", market_id
        )
        assert (stored["quote_qty_atoms"], stored["maker_fee_atoms"]) == (big, huge)
    finally:
        await journal.close()


async def test_stale_epoch_cannot_append_or_snapshot(db_url: str, conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    old, new = await Journal.open(db_url, market_id), await Journal.open(db_url, market_id)
    try:
        old_epoch = await old.acquire_epoch("old")
        await old.append(old_epoch, [tick_row(1)])
        await old.project(old_epoch, 1, [], [])
        new_epoch = await new.acquire_epoch("new")
        assert new_epoch == old_epoch + 1
        with pytest.raises(FencedError):
            await old.append(old_epoch, [tick_row(2)])
        with pytest.raises(FencedError):
            await old.project(old_epoch, 1, [], [])
        with pytest.raises(FencedError):
            await old.save_snapshot(old_epoch, 1, 0, b"x")
        await new.append(new_epoch, [tick_row(2)])
        assert [r.seq async for chunk in new.load_tail(0) for r in chunk] == [1, 2]
    finally:
        await old.close()
        await new.close()


async def test_a_batch_relying_on_a_lost_ledger_hold_is_not_journaled(
    db_url: str, conn: asyncpg.Connection
) -> None:
    market_id = await _market(conn)
    shard = 1_000 + market_id  # a shard of this test's own
    held = await conn.fetchval("SELECT clob_acquire_ledger_epoch($1)", shard)
    journal = await Journal.open(db_url, market_id)
    try:
        epoch = await journal.acquire_epoch("test")
        await journal.append(
            epoch, [tick_row(1), dataclasses.replace(tick_row(2), hold=(shard, held))]
        )
        assert await conn.fetchval("SELECT clob_acquire_ledger_epoch($1)", shard) == held + 1
        with pytest.raises(LostHoldError, match=f"ledger shard {shard} epoch {held}"):
            await journal.append(
                epoch, [tick_row(3), dataclasses.replace(tick_row(4), hold=(shard, held))]
            )
        with pytest.raises(LostHoldError, match="current epoch none"):
            await journal.append(epoch, [dataclasses.replace(tick_row(3), hold=(shard + 1, 1))])
        await journal.append(
            epoch, [tick_row(3), dataclasses.replace(tick_row(4), hold=(shard, held + 1))]
        )
        rows = await conn.fetch(
            "SELECT seq, ledger_shard, ledger_epoch FROM journal WHERE market_id = $1 ORDER BY seq",
            market_id,
        )
        assert [tuple(r) for r in rows] == [
            (1, None, None), (2, shard, held), (3, None, None), (4, shard, held + 1)
        ]  # fmt: skip
    finally:
        await journal.close()


async def test_latest_snapshot_is_loaded(db_url: str, conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    journal = await Journal.open(db_url, market_id)
    try:
        assert await journal.load_latest_snapshot() is None
        epoch = await journal.acquire_epoch("snap")
        await journal.save_snapshot(epoch, 5, 50, b"five")
        await journal.save_snapshot(epoch, 9, 90, b"nine")
        await journal.save_snapshot(epoch, 9, 91, b"nine again")
        snap = await journal.load_latest_snapshot()
        assert snap is not None
        assert (snap.seq, snap.event_seq, snap.epoch, snap.state) == (9, 91, epoch, b"nine again")
        older = await journal.load_latest_snapshot(max_seq=8)
        assert older is not None
        assert (older.seq, older.state) == (5, b"five")
    finally:
        await journal.close()


async def test_tail_streams_in_seq_order_in_chunks(db_url: str, conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    journal = await Journal.open(db_url, market_id)
    try:
        epoch = await journal.acquire_epoch("tail")
        for start in range(1, 20_001, 5_000):
            await journal.append(epoch, [tick_row(s) for s in range(start, start + 5_000)])
        chunks = [chunk async for chunk in journal.load_tail(1_234, chunk_rows=3_000)]
        seqs = [r.seq for chunk in chunks for r in chunk]
        assert seqs == list(range(1_235, 20_001))
        assert max(len(c) for c in chunks) == 3_000
        assert chunks[0][0].payload["command"] == {"type": "tick", "ts": 1_235}
        # An exact multiple of the chunk size ends with the last full chunk.
        exact = [len(c) async for c in journal.load_tail(20_000 - 6_000, chunk_rows=3_000)]
        assert exact == [3_000, 3_000]
    finally:
        await journal.close()


async def test_leaving_the_tail_early_leaves_the_connection_usable(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """The next chunk is fetched while the caller works on this one; a caller that stops
    early (a replay mismatch) cancels that fetch, and the connection still works."""
    market_id = await _market(conn)
    journal = await Journal.open(db_url, market_id)
    try:
        epoch = await journal.acquire_epoch("early")
        await journal.append(epoch, [tick_row(s) for s in range(1, 101)])
        async with contextlib.aclosing(journal.load_tail(0, chunk_rows=10)) as tail:
            async for chunk in tail:
                assert [r.seq for r in chunk] == list(range(1, 11))
                break
        assert await journal.high_water() == 100
        assert [r.seq async for c in journal.load_tail(95, chunk_rows=10) for r in c] == [
            96, 97, 98, 99, 100,
        ]  # fmt: skip
    finally:
        await journal.close()


async def test_a_client_order_id_used_on_another_market_does_not_block_the_projection(
    db_url: str, conn: asyncpg.Connection
) -> None:
    """Two markets accepted one client order id of one account at the same moment: the
    second projection keeps the order without the id instead of failing (for ever)."""
    first_market, second_market = await _market(conn), await _market(conn)
    acc = await conn.fetchval("INSERT INTO accounts DEFAULT VALUES RETURNING account_id")
    first, second = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    for market_id, oid in ((first_market, first), (second_market, second)):
        journal = await Journal.open(db_url, market_id)
        try:
            epoch = await journal.acquire_epoch("coid")
            await journal.append(epoch, [tick_row(1)])
            row = dataclasses.replace(resting_sell_row(oid, acc, 1), client_order_id="same")
            await journal.project(epoch, 1, [row], [])
            assert await journal.projection_mark() == 1
        finally:
            await journal.close()
    stored = await conn.fetch(
        "SELECT order_id, client_order_id FROM orders WHERE order_id = ANY($1::text[])",
        [first, second],
    )
    assert {r["order_id"]: r["client_order_id"] for r in stored} == {first: "same", second: None}
