"""Apply the numbered SQL migrations in ``migrations/`` to a PostgreSQL database.

Each file ``NNNN_name.sql`` runs in its own transaction and is recorded in
``schema_migrations`` with the SHA-256 of its bytes. Running again applies only files not
yet recorded; a recorded file whose bytes changed is refused, as is a database that
records a version this code does not ship (it is newer than the code). Concurrent runners
(several processes starting at once) serialize on a transaction-level advisory lock, so
every file is applied exactly once. This module is the only Python that touches
``schema_migrations``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import asyncpg

__all__ = [
    "Migration",
    "MigrationChecksumError",
    "MigrationError",
    "apply_migrations",
    "load_migrations",
    "pending_migrations",
]

# Arbitrary constant: the advisory lock key every migration runner takes ("clob mig").
_LOCK_KEY = 0x636C_6F62_6D69_67
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")

_CREATE_TABLE = """
CREATE TABLE schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    checksum    TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS
    'Applied migrations (written by actors/infra/migrate.py only).';
COMMENT ON COLUMN schema_migrations.version IS 'The NNNN prefix of the file name.';
COMMENT ON COLUMN schema_migrations.name IS 'File name without .sql, e.g. 0001_core.';
COMMENT ON COLUMN schema_migrations.checksum IS 'SHA-256 (hex) of the file as applied.';
COMMENT ON COLUMN schema_migrations.applied_at IS 'When it was applied.';
"""
_LOCK = "SELECT pg_advisory_xact_lock($1)"
_TABLE_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"
_SELECT_APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
_IS_APPLIED = "SELECT EXISTS (SELECT FROM schema_migrations WHERE version = $1)"
_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


class MigrationError(RuntimeError):
    """The migrations cannot be applied as they are (bad file set or database state)."""


class MigrationChecksumError(MigrationError):
    """A migration already applied to the database differs from the file shipped now."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file.

    Attributes:
        version: The NNNN prefix as an integer.
        name: File name without ``.sql`` (e.g. ``0001_core``); what the API reports.
        checksum: SHA-256 of the file's bytes, hex.
        sql: The file's text.
    """

    version: int
    name: str
    checksum: str
    sql: str


def _default_directory() -> Traversable:
    return importlib.resources.files("migrations")


def load_migrations(directory: Path | Traversable | None = None) -> list[Migration]:
    """Read the migration files of a directory, ordered by version.

    Args:
        directory: Folder holding ``NNNN_name.sql`` files; default: the ``migrations``
            package's data.

    Returns:
        The migrations in ascending version order.

    Raises:
        MigrationError: A ``.sql`` file is misnamed or two files share a version.
    """
    folder = directory if directory is not None else _default_directory()
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql") or not entry.is_file():
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file name {entry.name!r} is not NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migration files have version {version:04d}")
        data = entry.read_bytes()
        found[version] = Migration(
            version=version,
            name=entry.name.removesuffix(".sql"),
            checksum=hashlib.sha256(data).hexdigest(),
            sql=data.decode("utf-8"),
        )
    return [found[v] for v in sorted(found)]


def _check_applied(migrations: list[Migration], applied: list[asyncpg.Record]) -> set[int]:
    by_version = {m.version: m for m in migrations}
    for row in applied:
        version, name, checksum = row["version"], row["name"], row["checksum"]
        shipped = by_version.get(version)
        if shipped is None:
            raise MigrationError(
                f"database has migration {name!r} that this code does not ship; "
                "it is newer than the code"
            )
        if shipped.name != name or shipped.checksum != checksum:
            raise MigrationChecksumError(
                f"migration {name!r} was applied with checksum {checksum[:12]}…, but the "
                f"file {shipped.name}.sql now has {shipped.checksum[:12]}…; never edit an "
                "applied migration, add a new one"
            )
    return {row["version"] for row in applied}


async def _applied_versions(conn: asyncpg.Connection, migrations: list[Migration]) -> set[int]:
    if not await conn.fetchval(_TABLE_EXISTS):
        return set()
    return _check_applied(migrations, await conn.fetch(_SELECT_APPLIED))


async def pending_migrations(
    conn: asyncpg.Connection, directory: Path | Traversable | None = None
) -> list[str]:
    """List the migrations not yet applied to the database, in order.

    Args:
        conn: An open connection to the target database.
        directory: Migration folder; default: the ``migrations`` package's data.

    Returns:
        Names (``NNNN_name``) of the files still to apply.

    Raises:
        MigrationChecksumError: An applied file has changed since.
        MigrationError: The file set is invalid or the database is newer than the code.
    """
    migrations = load_migrations(directory)
    applied = await _applied_versions(conn, migrations)
    return [m.name for m in migrations if m.version not in applied]


async def apply_migrations(
    conn: asyncpg.Connection, directory: Path | Traversable | None = None
) -> list[str]:
    """Apply every pending migration, each in its own transaction.

    Safe to run again and from several processes at once: applied files are skipped, and
    each transaction takes an advisory lock and re-checks before applying. A failing file
    rolls back completely and stops the run; the files before it stay applied.

    Args:
        conn: An open connection (not inside a transaction) to the target database, as a
            role allowed to create the schema's roles and objects (a superuser).
        directory: Migration folder; default: the ``migrations`` package's data.

    Returns:
        Names (``NNNN_name``) of the files this call applied, in order.

    Raises:
        MigrationChecksumError: An applied file has changed since.
        MigrationError: The file set is invalid or the database is newer than the code.
        asyncpg.PostgresError: A migration's SQL failed (nothing of that file remains).
    """
    migrations = load_migrations(directory)
    async with conn.transaction():
        await conn.execute(_LOCK, _LOCK_KEY)
        if not await conn.fetchval(_TABLE_EXISTS):
            await conn.execute(_CREATE_TABLE)
        applied = _check_applied(migrations, await conn.fetch(_SELECT_APPLIED))
    newly: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        async with conn.transaction():
            await conn.execute(_LOCK, _LOCK_KEY)
            if await conn.fetchval(_IS_APPLIED, migration.version):
                continue  # another runner applied it meanwhile
            # Record first: a migration may SET LOCAL ROLE to a role that cannot write
            # schema_migrations. A failure rolls the record back with the file.
            await conn.execute(_RECORD, migration.version, migration.name, migration.checksum)
            await conn.execute(migration.sql)
        newly.append(migration.name)
    return newly
