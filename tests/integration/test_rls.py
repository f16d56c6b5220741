"""Row level security: a connection acting for one account never sees another's rows.

Superusers always bypass RLS, so every check here runs under SET LOCAL ROLE to one of the
schema's non-superuser roles, inside a transaction, exactly as the gateway does.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from actors.infra.migrate import apply_migrations

# Tables whose rows belong to one account (column account_id).
OWNED = [
    "accounts",
    "api_keys",
    "balances",
    "orders",
    "deposit_addresses",
    "deposits",
    "withdrawal_addresses",
    "withdrawals",
]


@dataclass(frozen=True, slots=True)
class World:
    """Seeded data: accounts A, B and C; A traded with B, B with C."""

    db: str
    market_id: int
    a: int
    b: int
    c: int
    trade_ab: int
    trade_bc: int
    key_a: str
    secret_a: bytes


async def _seed_account(conn: asyncpg.Connection, market_id: int, n: int) -> tuple[int, str]:
    account_id: int = await conn.fetchval(
        "INSERT INTO accounts DEFAULT VALUES RETURNING account_id"
    )
    assets = await conn.fetchrow(
        "SELECT base_asset_id, quote_asset_id FROM markets WHERE market_id = $1", market_id
    )
    assert assets is not None
    for asset_id in assets:
        await conn.execute(
            "INSERT INTO balances (account_id, asset_id, available_atoms, locked_atoms) "
            "VALUES ($1, $2, 1000, 10)",
            account_id,
            asset_id,
        )
    for i in range(2):
        await conn.execute(
            """INSERT INTO orders (order_id, account_id, market_id, client_order_id, side, kind,
                                   price_ticks, qty_lots, open_qty_lots, status)
               VALUES ($1, $2, $3, $4, 'sell', 'limit', 100, 5, 5, 'open')""",
            f"o-{account_id}-{i}",
            account_id,
            market_id,
            f"client-{i}",  # the same client ids in every account
        )
    base = assets["base_asset_id"]
    address = f"{n}".rjust(44, "D")
    await conn.execute(
        "INSERT INTO deposit_addresses (account_id, asset_id, address) VALUES ($1, $2, $3)",
        account_id,
        base,
        address,
    )
    await conn.execute(
        """INSERT INTO deposits (account_id, asset_id, amount_atoms, address, tx_signature)
           VALUES ($1, $2, 1000, $3, $4)""",
        account_id,
        base,
        address,
        f"{n}".rjust(88, "S"),
    )
    wallet = f"{n}".rjust(44, "W")
    await conn.execute(
        "INSERT INTO withdrawal_addresses (account_id, address) VALUES ($1, $2)",
        account_id,
        wallet,
    )
    await conn.execute(
        """INSERT INTO withdrawals (account_id, asset_id, amount_atoms, destination)
           VALUES ($1, $2, 5, $3)""",
        account_id,
        base,
        wallet,
    )
    key_id = f"key_{uuid.uuid4().hex}"
    await conn.execute(
        "INSERT INTO api_keys (key_id, account_id, secret_sha256) VALUES ($1, $2, $3)",
        key_id,
        account_id,
        hashlib.sha256(key_id.encode()).digest(),
    )
    return account_id, key_id


async def _seed_trade(
    conn: asyncpg.Connection, market_id: int, seq: int, maker: int, taker: int
) -> int:
    trade_id: int = await conn.fetchval(
        """INSERT INTO trades (market_id, seq, maker_order_id, taker_order_id, maker_account_id,
                               taker_account_id, taker_side, price_ticks, qty_lots,
                               quote_qty_atoms, maker_fee_atoms, taker_fee_atoms, executed_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'buy', 100, 1, 100, 0, 1, now())
           RETURNING trade_id""",
        market_id,
        seq,
        f"o-{maker}-0",
        f"o-{taker}-1",
        maker,
        taker,
    )
    return trade_id


@pytest_asyncio.fixture(scope="module")
async def world(pg_dsn: str) -> AsyncIterator[World]:
    """A migrated database of this module's own with three accounts' data."""
    name = f"rls_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        conn = await asyncpg.connect(pg_dsn, database=name)
        try:
            await apply_migrations(conn)
            base = await conn.fetchval(
                "INSERT INTO assets (symbol, decimals) VALUES ('SOL', 9) RETURNING asset_id"
            )
            quote = await conn.fetchval(
                "INSERT INTO assets (symbol, decimals) VALUES ('USDC', 6) RETURNING asset_id"
            )
            market_id = await conn.fetchval(
                """INSERT INTO markets (symbol, base_asset_id, quote_asset_id, lot_size_atoms,
                                        tick_size_atoms)
                   VALUES ('SOL-USDC', $1, $2, 1000000, 1000) RETURNING market_id""",
                base,
                quote,
            )
            (a, key_a), (b, _), (c, _) = [await _seed_account(conn, market_id, n) for n in range(3)]
            trade_ab = await _seed_trade(conn, market_id, 1, a, b)
            trade_bc = await _seed_trade(conn, market_id, 2, b, c)
        finally:
            await conn.close()
        yield World(name, market_id, a, b, c, trade_ab, trade_bc, key_a, key_a.encode())
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def conn(pg_dsn: str, world: World) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the seeded database (as the superuser, before any SET ROLE)."""
    connection = await asyncpg.connect(pg_dsn, database=world.db)
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def acting(
    conn: asyncpg.Connection, role: str, account_id: int | None
) -> AsyncIterator[asyncpg.Connection]:
    """Run a transaction as `role`, acting for `account_id` (None: no account set).

    The transaction is rolled back, so tests cannot disturb the seeded data.
    """
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(f"SET LOCAL ROLE {role}")
        if account_id is not None:
            await conn.execute("SELECT set_config('clob.account_id', $1, true)", str(account_id))
        yield conn
    finally:
        await tx.rollback()


_READ_OWNED = {
    table: f"SELECT DISTINCT account_id FROM {table}" for table in OWNED if table != "api_keys"
} | {"api_keys": "SELECT DISTINCT account_id FROM api_keys"}


@pytest.mark.parametrize("role", ["clob_api", "clob_owner"])
@pytest.mark.parametrize("table", OWNED)
async def test_an_account_sees_only_its_own_rows(
    conn: asyncpg.Connection, world: World, role: str, table: str
) -> None:
    for me in (world.a, world.b):
        async with acting(conn, role, me):
            owners = [r[0] for r in await conn.fetch(_READ_OWNED[table])]
        assert owners == [me], f"{role} acting for {me} read {table} rows of {owners}"


@pytest.mark.parametrize("role", ["clob_api", "clob_owner"])
async def test_an_account_sees_only_trades_it_took_part_in(
    conn: asyncpg.Connection, world: World, role: str
) -> None:
    async with acting(conn, role, world.a):
        seen_by_a = {r[0] for r in await conn.fetch("SELECT trade_id FROM trades")}
    async with acting(conn, role, world.b):
        seen_by_b = {r[0] for r in await conn.fetch("SELECT trade_id FROM trades")}
    async with acting(conn, role, world.c):
        seen_by_c = {r[0] for r in await conn.fetch("SELECT trade_id FROM trades")}
    assert seen_by_a == {world.trade_ab}  # as maker; never B's trade with C
    assert seen_by_b == {world.trade_ab, world.trade_bc}  # as taker and as maker
    assert seen_by_c == {world.trade_bc}


@pytest.mark.parametrize("role", ["clob_api", "clob_owner"])
@pytest.mark.parametrize("table", [*OWNED, "trades"])
async def test_no_acting_account_means_no_rows(
    conn: asyncpg.Connection, role: str, table: str
) -> None:
    async with acting(conn, role, None):
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0


async def test_filtering_for_another_account_finds_nothing(
    conn: asyncpg.Connection, world: World
) -> None:
    async with acting(conn, "clob_api", world.a):
        assert await conn.fetch("SELECT * FROM orders WHERE account_id = $1", world.b) == []
        assert await conn.fetch("SELECT * FROM balances WHERE account_id = $1", world.b) == []
        assert await conn.fetch("SELECT * FROM orders WHERE order_id = $1", f"o-{world.b}-0") == []


async def test_the_table_owner_is_subject_to_rls(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        """SELECT relname, relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner)
             FROM pg_class WHERE relname = ANY($1::TEXT[]) ORDER BY relname""",
        [*OWNED, "trades"],
    )
    assert len(rows) == len(OWNED) + 1
    assert all(tuple(r)[1:] == (True, True, "clob_owner") for r in rows), rows
    owner = await conn.fetchrow(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'clob_owner'"
    )
    assert owner is not None and tuple(owner) == (False, False)


async def test_the_setting_ends_with_the_transaction(
    conn: asyncpg.Connection, world: World
) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_api")
        await conn.execute("SELECT set_config('clob.account_id', $1, true)", str(world.a))
        assert await conn.fetchval("SELECT count(*) FROM orders") == 2
    async with acting(conn, "clob_api", None):
        assert await conn.fetchval("SELECT count(*) FROM orders") == 0


async def test_an_account_cannot_write_rows_for_another(
    conn: asyncpg.Connection, world: World
) -> None:
    async with acting(conn, "clob_api", world.a):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                """INSERT INTO orders (order_id, account_id, market_id, side, kind, price_ticks,
                                       qty_lots)
                   VALUES ('forged', $1, $2, 'buy', 'limit', 1, 1)""",
                world.b,
                world.market_id,
            )
    async with acting(conn, "clob_api", world.a):
        deleted = await conn.execute(
            "DELETE FROM withdrawal_addresses WHERE account_id = $1", world.b
        )
        assert deleted == "DELETE 0"


async def test_the_api_places_orders_for_the_acting_account(
    conn: asyncpg.Connection, world: World
) -> None:
    async with acting(conn, "clob_api", world.a):
        status = await conn.fetchval(
            """INSERT INTO orders (order_id, account_id, market_id, side, kind, price_ticks,
                                   qty_lots)
               VALUES ('new-order', $1, $2, 'buy', 'limit', 1, 1) RETURNING status""",
            world.a,
            world.market_id,
        )
        assert status == "pending_new"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE orders SET status = 'filled'",
        "UPDATE balances SET available_atoms = 1000000000",
        "INSERT INTO trades (market_id, seq, maker_order_id, taker_order_id, maker_account_id,"
        " taker_account_id, taker_side, price_ticks, qty_lots, quote_qty_atoms, maker_fee_atoms,"
        " taker_fee_atoms, executed_at) SELECT market_id, 99, 'x', 'y', maker_account_id,"
        " taker_account_id, 'buy', 1, 1, 1, 0, 0, now() FROM trades LIMIT 1",
        "SELECT * FROM journal",
        "SELECT * FROM ledger_marks",
        "SELECT * FROM audit_log",
        "SELECT secret_sha256 FROM api_keys",
        "SELECT clob_acquire_market_epoch(1)",
    ],
)
async def test_the_api_role_lacks_system_privileges(
    conn: asyncpg.Connection, world: World, statement: str
) -> None:
    async with acting(conn, "clob_api", world.a):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(statement)


async def test_the_api_only_takes_the_users_steps_of_a_withdrawal(
    conn: asyncpg.Connection, world: World
) -> None:
    # Migration 0018: record, hold for the second step, cancel; never debit, send or land.
    mine = "UPDATE withdrawals SET status = $1 WHERE account_id = $2"
    for step in ("debited", "sent", "confirmed", "failed"):
        async with acting(conn, "clob_api", world.a):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(mine, step, world.a)
    async with acting(conn, "clob_api", world.a):
        assert await conn.execute(mine, "cancelled", world.b) == "UPDATE 0"
    async with acting(conn, "clob_api", world.a):
        assert await conn.execute(mine, "cancelled", world.a) == "UPDATE 1"
        # A cancelled one stays cancelled.
        assert await conn.execute(mine, "requested", world.a) == "UPDATE 0"


async def test_the_public_tape_shows_every_trade_without_accounts(
    conn: asyncpg.Connection, world: World
) -> None:
    async with acting(conn, "clob_api", world.a):
        tape = await conn.fetch(
            "SELECT * FROM public_trades WHERE market_id = $1 ORDER BY seq DESC LIMIT 50",
            world.market_id,
        )
    assert {r["trade_id"] for r in tape} == {world.trade_ab, world.trade_bc}
    assert not {k for k in dict(tape[0]) if "account" in k or "order" in k}
    async with acting(conn, "clob_api", None):
        stats = await conn.fetchrow(
            "SELECT trade_count FROM market_stats_24h WHERE market_id = $1", world.market_id
        )
        assert stats is not None and stats["trade_count"] == 2
        assert await conn.fetchval("SELECT count(*) FROM markets") == 1


async def test_the_system_role_sees_every_account(conn: asyncpg.Connection, world: World) -> None:
    async with acting(conn, "clob_system", None):
        owners = {r[0] for r in await conn.fetch("SELECT DISTINCT account_id FROM orders")}
        assert owners == {world.a, world.b, world.c}
        assert await conn.fetchval("SELECT count(*) FROM trades") == 2


async def test_api_keys_authenticate_by_secret_hash_only(
    conn: asyncpg.Connection, world: World
) -> None:
    good = hashlib.sha256(world.secret_a).digest()
    async with acting(conn, "clob_api", None):
        row = await conn.fetchrow("SELECT * FROM api_key_authenticate($1, $2)", world.key_a, good)
        assert row is not None and row["account_id"] == world.a
        assert row["account_status"] == "active"
        bad = hashlib.sha256(b"guess").digest()
        assert (
            await conn.fetch("SELECT * FROM api_key_authenticate($1, $2)", world.key_a, bad) == []
        )
