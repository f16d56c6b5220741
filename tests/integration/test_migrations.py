"""The migration runner on a real embedded PostgreSQL: fresh databases, re-runs, refusals."""

from __future__ import annotations

import asyncio
import importlib.resources
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from actors.infra.migrate import (
    MigrationChecksumError,
    MigrationError,
    apply_migrations,
    load_migrations,
    pending_migrations,
)
from tests.support.market_kit import create_database, drop_database

SHIPPED = [m.name for m in load_migrations()]

# Everything a migration could change, read from the catalogs in a stable order.
_FINGERPRINT = {
    "relations": """
        SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
               pg_get_userbyid(c.relowner) AS owner, c.relacl::TEXT AS acl,
               obj_description(c.oid, 'pg_class') AS comment
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' ORDER BY 1""",
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum), a.attacl::TEXT
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::TEXT, conname, pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "policies": """
        SELECT tablename, policyname, permissive, roles::TEXT, cmd, qual, with_check
          FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::TEXT, tgname, pg_get_triggerdef(oid), tgenabled
          FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.oid::regprocedure::TEXT, pg_get_userbyid(p.proowner), p.prosecdef,
               p.proacl::TEXT, md5(p.prosrc)
          FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1""",
    "roles": """
        SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles
         WHERE rolname LIKE 'clob\\_%' ORDER BY 1""",
    "migrations": "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY 1",
}


async def _fingerprint(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {key: [tuple(r) for r in await conn.fetch(sql)] for key, sql in _FINGERPRINT.items()}


@pytest.fixture
async def fresh_db(pg_dsn: str) -> AsyncIterator[str]:
    """Yield the name of a brand-new empty database (dropped afterwards)."""
    url = await create_database(pg_dsn, "mig", migrate=False)
    try:
        yield url.rpartition("/")[2]
    finally:
        await drop_database(pg_dsn, url)


@pytest.fixture
async def conn(pg_dsn: str, fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the fresh database, as the server's superuser."""
    connection = await asyncpg.connect(pg_dsn, database=fresh_db)
    try:
        yield connection
    finally:
        await connection.close()


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


async def test_shipped_migrations_are_numbered_and_packaged() -> None:
    assert SHIPPED, "the migrations package ships no .sql files"
    assert [int(name[:4]) for name in SHIPPED] == sorted({int(name[:4]) for name in SHIPPED})
    assert importlib.resources.files("migrations").joinpath(f"{SHIPPED[0]}.sql").is_file()


async def test_migrations_apply_on_a_fresh_database(conn: asyncpg.Connection) -> None:
    assert await pending_migrations(conn) == SHIPPED
    assert await apply_migrations(conn) == SHIPPED
    assert await pending_migrations(conn) == []
    recorded = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in recorded] == [(int(n[:4]), n) for n in SHIPPED]
    tables = {
        r[0]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {
        "assets", "markets", "accounts", "api_keys", "balances", "orders", "trades",
        "journal", "engine_snapshots", "market_epochs", "ledger_marks", "settlements",
        "deposits", "withdrawals", "deposit_addresses", "audit_log", "schema_migrations",
    } <= tables  # fmt: skip


async def test_applying_again_changes_nothing(conn: asyncpg.Connection) -> None:
    await apply_migrations(conn)
    before = await _fingerprint(conn)
    assert await apply_migrations(conn) == []
    assert await _fingerprint(conn) == before


async def test_concurrent_runners_apply_each_file_once(pg_dsn: str, fresh_db: str) -> None:
    first = await asyncpg.connect(pg_dsn, database=fresh_db)
    second = await asyncpg.connect(pg_dsn, database=fresh_db)
    try:
        done = await asyncio.gather(apply_migrations(first), apply_migrations(second))
    finally:
        await first.close()
        await second.close()
    assert sorted(done[0] + done[1]) == SHIPPED
    assert not set(done[0]) & set(done[1])


async def test_a_new_file_is_applied_on_the_next_run(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    folder = _write(tmp_path / "m", {"0001_one.sql": "CREATE TABLE one (x INT);"})
    assert await apply_migrations(conn, folder) == ["0001_one"]
    _write(folder, {"0002_two.sql": "CREATE TABLE two (x INT);"})
    assert await pending_migrations(conn, folder) == ["0002_two"]
    assert await apply_migrations(conn, folder) == ["0002_two"]


async def test_an_edited_applied_migration_is_refused(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    folder = _write(tmp_path / "m", {"0001_one.sql": "CREATE TABLE one (x INT);"})
    await apply_migrations(conn, folder)
    _write(folder, {"0001_one.sql": "CREATE TABLE one (x BIGINT);"})
    with pytest.raises(MigrationChecksumError, match="0001_one"):
        await apply_migrations(conn, folder)
    with pytest.raises(MigrationChecksumError):
        await pending_migrations(conn, folder)


async def test_a_database_newer_than_the_code_is_refused(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    newer = _write(tmp_path / "new", {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;"})
    await apply_migrations(conn, newer)
    older = _write(tmp_path / "old", {"0001_a.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match="newer than the code"):
        await apply_migrations(conn, older)


async def test_a_failing_migration_leaves_nothing_behind(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    folder = _write(
        tmp_path / "m",
        {
            "0001_ok.sql": "CREATE TABLE ok (x INT);",
            "0002_bad.sql": "CREATE TABLE half (x INT);\nSELECT 1 / 0;",
        },
    )
    with pytest.raises(asyncpg.DivisionByZeroError):
        await apply_migrations(conn, folder)
    assert await conn.fetchval("SELECT to_regclass('ok') IS NOT NULL")
    assert await conn.fetchval("SELECT to_regclass('half') IS NULL")
    assert await pending_migrations(conn, folder) == ["0002_bad"]


@pytest.mark.parametrize(
    "files",
    [
        {"1_short.sql": "SELECT 1;"},
        {"0001_Upper.sql": "SELECT 1;"},
        {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"},
    ],
    ids=["short-version", "upper-case", "duplicate-version"],
)
async def test_a_malformed_file_set_is_refused(tmp_path: Path, files: dict[str, str]) -> None:
    with pytest.raises(MigrationError):
        load_migrations(_write(tmp_path / "m", files))


async def test_migration_directory_may_be_copied(conn: asyncpg.Connection, tmp_path: Path) -> None:
    # A copy of the shipped files (e.g. an installed wheel) has the same checksums.
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in SHIPPED:
        source = importlib.resources.files("migrations").joinpath(f"{name}.sql")
        with importlib.resources.as_file(source) as path:
            shutil.copy(path, copy / path.name)
    assert await apply_migrations(conn, copy) == SHIPPED
    assert await pending_migrations(conn) == []


@pytest.mark.parametrize(("shards_started", "recorded"), [((0, 1, 2), [(3,)]), ((), [])])
async def test_the_ledger_layout_is_recorded_from_the_shards_that_ran(
    conn: asyncpg.Connection, tmp_path: Path, shards_started: tuple[int, ...], recorded: list[Any]
) -> None:
    # A ledger that ran before 0012 has an epoch row per shard it started.
    before = tmp_path / "before"
    before.mkdir()
    for name in SHIPPED[: SHIPPED.index("0012_ledger_layout")]:
        source = importlib.resources.files("migrations").joinpath(f"{name}.sql")
        with importlib.resources.as_file(source) as path:
            shutil.copy(path, before / path.name)
    await apply_migrations(conn, before)
    for shard in shards_started:
        await conn.execute("SELECT clob_acquire_ledger_epoch($1)", shard)
    assert await apply_migrations(conn) == SHIPPED[SHIPPED.index("0012_ledger_layout") :]
    assert [tuple(r) for r in await conn.fetch("SELECT shard_count FROM ledger_layout")] == recorded
