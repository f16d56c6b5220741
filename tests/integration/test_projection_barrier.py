"""The read barrier of the API (`serve_app.gateway.db.projected`) against a real PostgreSQL.

A market answers once a pass is journaled; the orders/trades projection follows. A read
of those tables must still see every command acknowledged before it started: it waits
until each market's projection mark reaches the journal's head as it was when the read
began.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from actors.engine import MarketSpec
from actors.market.journal import Journal
from actors.markets_repo import create_market
from serve_app.errors import ApiError
from serve_app.gateway import db
from tests.support.market_kit import resting_sell_row, tick_row


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool like the gateway's."""
    created = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
async def journals(db_url: str, pool: asyncpg.Pool) -> AsyncIterator[list[tuple[Journal, int]]]:
    """Two fresh markets' journals, each with its epoch."""
    out: list[tuple[Journal, int]] = []
    try:
        for _ in range(2):
            tag = uuid.uuid4().hex[:6].upper()
            spec = MarketSpec(symbol=f"B{tag}-Q{tag}", base_asset=f"B{tag}", quote_asset=f"Q{tag}")
            async with pool.acquire() as conn:
                market_id = (await create_market(conn, spec)).market_id
            journal = await Journal.open(db_url, market_id)
            out.append((journal, await journal.acquire_epoch("test")))
        yield out
    finally:
        for journal, _ in out:
            await journal.close()


async def _waits(pool: asyncpg.Pool, markets: db.Markets) -> bool:
    """Return whether the barrier over `markets`, run as the API runs it (`clob_api`), is
    still waiting after 150 ms."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        waiting = asyncio.ensure_future(db.projected(conn, markets))
        done, _ = await asyncio.wait([waiting], timeout=0.15)
        if done:
            waiting.result()
            return False
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        return True


async def test_a_read_waits_for_the_projection_of_what_was_journaled_before_it(
    pool: asyncpg.Pool, journals: list[tuple[Journal, int]]
) -> None:
    (first, epoch), (other, other_epoch) = journals
    await first.append(epoch, [tick_row(1), tick_row(2)])
    await other.append(other_epoch, [tick_row(1)])
    await other.project(other_epoch, 1, [], [])
    assert await _waits(pool, db.EVERY_MARKET)
    assert await _waits(pool, db.Markets(only=first.market_id))
    assert await _waits(pool, db.Markets(besides=other.market_id))
    assert not await _waits(pool, db.Markets(only=other.market_id))
    assert not await _waits(pool, db.Markets(besides=first.market_id))

    # Projected up to 1 of 2: still behind; up to 2: caught up.
    await first.project(epoch, 1, [], [])
    assert await _waits(pool, db.Markets(only=first.market_id))
    await first.project(epoch, 2, [], [])
    assert not await _waits(pool, db.EVERY_MARKET)


async def test_acting_as_reads_an_order_projected_after_the_read_began(
    pool: asyncpg.Pool, journals: list[tuple[Journal, int]]
) -> None:
    (journal, epoch), _ = journals
    async with pool.acquire() as conn:
        account = await conn.fetchval("INSERT INTO accounts DEFAULT VALUES RETURNING account_id")
    oid = f"o-{uuid.uuid4().hex}"
    await journal.append(epoch, [tick_row(1)])  # acknowledged: journaled, not yet projected
    async with db.acting_as(pool, account, projection=None) as conn:
        assert await db.get_order(conn, oid) is None  # a read that does not wait misses it

    async def project_later() -> None:
        await asyncio.sleep(0.1)
        await journal.project(epoch, 1, [resting_sell_row(oid, account, 1)], [])

    later = asyncio.create_task(project_later())
    async with db.acting_as(pool, account) as conn:
        row = await db.get_order(conn, oid)
    await later
    assert row is not None and row["status"] == "open"


async def test_a_projection_that_does_not_catch_up_answers_503_unavailable(
    pool: asyncpg.Pool, journals: list[tuple[Journal, int]]
) -> None:
    (journal, epoch), _ = journals
    await journal.append(epoch, [tick_row(1)])  # the market "crashed" before projecting it
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        with pytest.raises(ApiError) as caught:
            await db.projected(conn, db.Markets(only=journal.market_id), timeout_s=0.05)
    assert caught.value.status == 503
    assert caught.value.code == "unavailable"
    assert caught.value.details == {"market_ids": [journal.market_id]}
