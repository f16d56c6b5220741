"""Constraints the schema itself enforces: append-only audit, no negative balances,
uniqueness keys, epoch fencing of the journal, comments on everything."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from tests.support.market_kit import create_database, drop_database

STALE_EPOCH = "CL001"
APPEND_ONLY = "CL002"


@pytest_asyncio.fixture(scope="module")
async def db(pg_dsn: str) -> AsyncIterator[str]:
    """Yield the name of a migrated database of this module's own (dropped afterwards)."""
    url = await create_database(pg_dsn, "schema")
    try:
        yield url.rpartition("/")[2]
    finally:
        await drop_database(pg_dsn, url)


@pytest.fixture
async def conn(pg_dsn: str, db: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the migrated database."""
    connection = await asyncpg.connect(pg_dsn, database=db)
    try:
        yield connection
    finally:
        await connection.close()


async def _market(conn: asyncpg.Connection) -> int:
    tag = uuid.uuid4().hex[:8].upper()
    base = await conn.fetchval(
        "INSERT INTO assets (symbol, decimals) VALUES ($1, 9) RETURNING asset_id", f"B{tag}"
    )
    quote = await conn.fetchval(
        "INSERT INTO assets (symbol, decimals) VALUES ($1, 6) RETURNING asset_id", f"Q{tag}"
    )
    market_id: int = await conn.fetchval(
        """INSERT INTO markets (symbol, base_asset_id, quote_asset_id, lot_size_atoms,
                                tick_size_atoms, maker_fee_bps, taker_fee_bps)
           VALUES ($1, $2, $3, 1000000, 1000, -1, 5) RETURNING market_id""",
        f"B{tag}-Q{tag}",
        base,
        quote,
    )
    return market_id


async def _account(conn: asyncpg.Connection) -> int:
    account_id: int = await conn.fetchval(
        "INSERT INTO accounts DEFAULT VALUES RETURNING account_id"
    )
    return account_id


async def _quote_asset(conn: asyncpg.Connection, market_id: int) -> int:
    asset_id: int = await conn.fetchval(
        "SELECT quote_asset_id FROM markets WHERE market_id = $1", market_id
    )
    return asset_id


# --- audit log -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
    ids=["update", "delete", "truncate"],
)
async def test_audit_log_refuses_changes_even_from_a_superuser(
    conn: asyncpg.Connection, statement: str
) -> None:
    audit_id = await conn.fetchval(
        "INSERT INTO audit_log (action, actor) VALUES ('test.entry', 'pytest') RETURNING audit_id"
    )
    with pytest.raises(asyncpg.PostgresError) as refused:
        await conn.execute(statement)
    assert refused.value.sqlstate == APPEND_ONLY
    assert await conn.fetchval("SELECT action FROM audit_log WHERE audit_id = $1", audit_id) == (
        "test.entry"
    )


async def test_audit_log_refuses_even_a_statement_matching_no_row(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.PostgresError) as refused:
        await conn.execute("DELETE FROM audit_log WHERE audit_id = -1")
    assert refused.value.sqlstate == APPEND_ONLY


@pytest.mark.parametrize("role", ["clob_system", "clob_api", "clob_owner"])
@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_log SET action = 'forged'", "DELETE FROM audit_log", "TRUNCATE audit_log"],
    ids=["update", "delete", "truncate"],
)
async def test_audit_log_changes_are_not_even_granted(
    conn: asyncpg.Connection, role: str, statement: str
) -> None:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)


async def test_row_changes_of_api_keys_are_audited_without_the_secret(
    conn: asyncpg.Connection,
) -> None:
    account_id = await _account(conn)
    key_id = f"k_{uuid.uuid4().hex}"
    await conn.execute(
        "INSERT INTO api_keys (key_id, account_id, secret_sha256) VALUES ($1, $2, $3)",
        key_id,
        account_id,
        hashlib.sha256(b"secret").digest(),
    )
    await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = $1", key_id)
    await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", key_id)
    rows = await conn.fetch(
        """SELECT action, account_id, details FROM audit_log
            WHERE entity = 'api_keys' AND entity_id = $1 ORDER BY audit_id""",
        key_id,
    )
    assert [(r["action"], r["account_id"]) for r in rows] == [
        ("insert", account_id),
        ("update", account_id),  # the last_used_at-only update is not logged
    ]
    assert all("secret_sha256" not in r["details"] for r in rows)


# --- balances and amounts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "locked"), [(-1, 0), (0, -1), (-5, -5)], ids=["available", "locked", "both"]
)
async def test_balances_refuse_negative_amounts(
    conn: asyncpg.Connection, available: int, locked: int
) -> None:
    account_id = await _account(conn)
    asset_id = await _quote_asset(conn, await _market(conn))
    await conn.execute(
        "INSERT INTO balances (account_id, asset_id, available_atoms, locked_atoms) "
        "VALUES ($1, $2, 10, 10)",
        account_id,
        asset_id,
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "UPDATE balances SET available_atoms = $3, locked_atoms = $4 "
            "WHERE account_id = $1 AND asset_id = $2",
            account_id,
            asset_id,
            available,
            locked,
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "UPDATE balances SET available_atoms = available_atoms - 11 "
            "WHERE account_id = $1 AND asset_id = $2",
            account_id,
            asset_id,
        )


async def test_balances_hold_38_digit_atoms(conn: asyncpg.Connection) -> None:
    account_id = await _account(conn)
    asset_id = await _quote_asset(conn, await _market(conn))
    huge = 10**38 - 1
    await conn.execute(
        "INSERT INTO balances (account_id, asset_id, available_atoms) VALUES ($1, $2, $3)",
        account_id,
        asset_id,
        huge,
    )
    assert await conn.fetchval(
        "SELECT available_atoms FROM balances WHERE account_id = $1", account_id
    ) == (huge)


_ORDER = """INSERT INTO orders (order_id, account_id, market_id, client_order_id, side, kind,
                                price_ticks, qty_lots, open_qty_lots)
            VALUES ($1, $2, $3, $4, 'buy', 'limit', $5, $6, $6)"""


@pytest.mark.parametrize(("price", "qty"), [(0, 1), (-1, 1), (1, 0), (1, -3)])
async def test_orders_refuse_non_positive_price_or_qty(
    conn: asyncpg.Connection, price: int, qty: int
) -> None:
    market_id, account_id = await _market(conn), await _account(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(_ORDER, uuid.uuid4().hex, account_id, market_id, None, price, qty)


async def test_a_limit_order_needs_a_price(conn: asyncpg.Connection) -> None:
    market_id, account_id = await _market(conn), await _account(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(_ORDER, uuid.uuid4().hex, account_id, market_id, None, None, 1)


async def test_client_order_id_is_unique_per_account(conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    alice, bob = await _account(conn), await _account(conn)
    await conn.execute(_ORDER, uuid.uuid4().hex, alice, market_id, "c-1", 10, 1)
    await conn.execute(_ORDER, uuid.uuid4().hex, bob, market_id, "c-1", 10, 1)
    await conn.execute(_ORDER, uuid.uuid4().hex, alice, market_id, None, 10, 1)
    await conn.execute(_ORDER, uuid.uuid4().hex, alice, market_id, None, 10, 1)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(_ORDER, uuid.uuid4().hex, alice, market_id, "c-1", 11, 2)


_TRADE = """INSERT INTO trades (market_id, seq, maker_order_id, taker_order_id, maker_account_id,
                                taker_account_id, taker_side, price_ticks, qty_lots,
                                quote_qty_atoms, maker_fee_atoms, taker_fee_atoms, executed_at)
            VALUES ($1, $2, 'm', 't', $3, $4, 'buy', $5, 2, 2000, -1, 1, now())"""


async def test_trades_are_unique_per_market_and_seq_and_fees_may_be_rebates(
    conn: asyncpg.Connection,
) -> None:
    market_id = await _market(conn)
    maker, taker = await _account(conn), await _account(conn)
    await conn.execute(_TRADE, market_id, 7, maker, taker, 1000)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(_TRADE, market_id, 7, maker, taker, 1000)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(_TRADE, market_id, 8, maker, taker, 0)
    assert await conn.fetchval(
        "SELECT maker_fee_atoms FROM trades WHERE market_id = $1 AND seq = 7", market_id
    ) == (-1)


@pytest.mark.parametrize(
    ("lot", "tick", "ok"),
    [(1_000_000, 1000, True), (1, 1, False), (10, 10**8, True)],
)
async def test_markets_refuse_a_tick_lot_that_is_not_whole_quote_atoms(
    conn: asyncpg.Connection, lot: int, tick: int, ok: bool
) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    base = await conn.fetchval(
        "INSERT INTO assets (symbol, decimals) VALUES ($1, 9) RETURNING asset_id", f"B{tag}"
    )
    quote = await conn.fetchval(
        "INSERT INTO assets (symbol, decimals) VALUES ($1, 6) RETURNING asset_id", f"Q{tag}"
    )
    insert = conn.execute(
        "INSERT INTO markets (symbol, base_asset_id, quote_asset_id, lot_size_atoms, "
        "tick_size_atoms) VALUES ($1, $2, $3, $4, $5)",
        f"M{tag}",
        base,
        quote,
        lot,
        tick,
    )
    if ok:
        await insert
    else:
        with pytest.raises(asyncpg.CheckViolationError):
            await insert


async def test_a_maker_rebate_above_the_taker_fee_is_refused(conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "UPDATE markets SET maker_fee_bps = -6, taker_fee_bps = 5 WHERE market_id = $1",
            market_id,
        )


# --- journal fencing ---------------------------------------------------------------------

_APPEND = """INSERT INTO journal (market_id, seq, epoch, kind, payload)
             SELECT $1, s, $2, 'tick', jsonb_build_object('ts', s)
               FROM generate_series($3::BIGINT, $4::BIGINT) AS s"""


async def _acquire(conn: asyncpg.Connection, market_id: int) -> int:
    epoch: int = await conn.fetchval("SELECT clob_acquire_market_epoch($1, 'pytest')", market_id)
    return epoch


async def _expect_stale(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    with pytest.raises(asyncpg.PostgresError) as refused:
        await conn.execute(sql, *args)
    assert refused.value.sqlstate == STALE_EPOCH


async def test_journal_appends_need_the_current_epoch(conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    await _expect_stale(conn, _APPEND, market_id, 1, 1, 1)  # nobody holds the market yet
    first = await _acquire(conn, market_id)
    await conn.execute(_APPEND, market_id, first, 1, 100)  # one group-committed batch
    second = await _acquire(conn, market_id)
    assert second == first + 1
    await _expect_stale(conn, _APPEND, market_id, first, 101, 101)
    await conn.execute(_APPEND, market_id, second, 101, 101)
    assert await conn.fetchval("SELECT max(seq) FROM journal WHERE market_id = $1", market_id) == (
        101
    )


async def test_journal_copy_is_fenced_too(conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    first = await _acquire(conn, market_id)
    await _acquire(conn, market_id)
    with pytest.raises(asyncpg.PostgresError) as refused:
        await conn.copy_records_to_table(
            "journal",
            records=[(market_id, 1, first, "tick", json.dumps({"ts": 1}))],
            columns=["market_id", "seq", "epoch", "kind", "payload"],
        )
    assert refused.value.sqlstate == STALE_EPOCH


async def test_snapshots_are_fenced_like_the_journal(conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    first = await _acquire(conn, market_id)
    snapshot = """INSERT INTO engine_snapshots (market_id, seq, epoch, event_seq, state)
                  VALUES ($1, $2, $3, 0, '\\x7b7d')"""
    await conn.execute(snapshot, market_id, 0, first)
    await _acquire(conn, market_id)
    await _expect_stale(conn, snapshot, market_id, 1, first)


async def test_a_takeover_waits_for_the_in_flight_append_then_fences_it(
    pg_dsn: str, db: str
) -> None:
    old_writer = await asyncpg.connect(pg_dsn, database=db)
    new_writer = await asyncpg.connect(pg_dsn, database=db)
    try:
        market_id = await _market(old_writer)
        old_epoch = await _acquire(old_writer, market_id)
        batch = old_writer.transaction()
        await batch.start()
        await old_writer.execute(_APPEND, market_id, old_epoch, 1, 10)
        takeover = asyncio.ensure_future(_acquire(new_writer, market_id))
        await asyncio.sleep(0.3)
        assert not takeover.done(), "the takeover must wait for the in-flight batch"
        await batch.commit()
        new_epoch = await asyncio.wait_for(takeover, 10)
        assert new_epoch == old_epoch + 1
        # The new incarnation sees everything the old one committed, and the old one is out.
        assert await new_writer.fetchval(
            "SELECT count(*) FROM journal WHERE market_id = $1", market_id
        ) == (10)
        await _expect_stale(old_writer, _APPEND, market_id, old_epoch, 11, 11)
    finally:
        await old_writer.close()
        await new_writer.close()


async def test_journal_rows_cannot_be_rewritten_by_the_system_role(
    conn: asyncpg.Connection,
) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("UPDATE journal SET payload = '{}'")


# --- documentation -------------------------------------------------------------------------


async def test_every_table_view_and_column_has_a_comment(conn: asyncpg.Connection) -> None:
    missing = await conn.fetch(
        """SELECT c.relname, a.attname
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attribute a
                    ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p')
              AND (obj_description(c.oid, 'pg_class') IS NULL
                   OR col_description(c.oid, a.attnum) IS NULL)
            ORDER BY 1, 2"""
    )
    assert [tuple(r) for r in missing] == []


async def test_market_stats_summarise_the_last_day(conn: asyncpg.Connection) -> None:
    market_id = await _market(conn)
    maker, taker = await _account(conn), await _account(conn)
    for seq, price in [(1, 100), (2, 120), (3, 90), (4, 110)]:
        await conn.execute(_TRADE, market_id, seq, maker, taker, price)
    stats = await conn.fetchrow("SELECT * FROM market_stats_24h WHERE market_id = $1", market_id)
    assert stats is not None
    assert (stats["trade_count"], stats["volume_lots"], stats["quote_volume_atoms"]) == (4, 8, 8000)
    assert (stats["open_price_ticks"], stats["high_price_ticks"], stats["low_price_ticks"]) == (
        100,
        120,
        90,
    )
    assert stats["last_price_ticks"] == 110
