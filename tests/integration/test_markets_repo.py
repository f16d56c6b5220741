"""The market registry round-trips a MarketSpec through PostgreSQL."""

from __future__ import annotations

import asyncpg
import pytest

from actors.engine import MarketSpec
from actors.infra.migrate import apply_migrations
from actors.markets_repo import create_market, load_market, load_markets, set_market_status


@pytest.fixture(scope="module")
async def conn(pg_dsn: str) -> asyncpg.Connection:
    connection = await asyncpg.connect(pg_dsn)
    await apply_migrations(connection)
    yield connection
    await connection.close()


SOL_USDC = MarketSpec(
    symbol="SOLR-USDC", base_asset="SOLR", quote_asset="USDCR", base_decimals=9, quote_decimals=6,
    tick_size=10_000, lot_size=10_000_000, min_qty=1, max_qty=1_000_000, min_notional=10,
    maker_fee_bps=-2, taker_fee_bps=10,
)  # fmt: skip


async def test_market_spec_round_trips(conn: asyncpg.Connection) -> None:
    created = await create_market(conn, SOL_USDC)
    assert created.spec == SOL_USDC
    assert await load_market(conn, "SOLR-USDC") == created
    assert (await load_markets(conn))["SOLR-USDC"] == created


async def test_duplicate_market_is_refused(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.UniqueViolationError):
        await create_market(conn, SOL_USDC)


async def test_status_change_and_unknown_market(conn: asyncpg.Connection) -> None:
    assert await set_market_status(conn, "SOLR-USDC", "halted")
    record = await load_market(conn, "SOLR-USDC")
    assert record is not None and record.spec.status == "halted"
    assert not await set_market_status(conn, "NOPE-X", "halted")
    assert await load_market(conn, "NOPE-X") is None
