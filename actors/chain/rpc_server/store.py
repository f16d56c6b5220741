"""The embedded chain's durable record: a SQLite file in its data directory.

One row per account version (address, slot), so reads at `confirmed` and `finalized` see
the state of their slot; one row per landed transaction with its encoded meta; an index of
signatures per address; and a few scalars (slot, frontiers, genesis hash). Each landed
transaction is written in one SQLite transaction, so a crash keeps it whole or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from solders.account import Account
from solders.pubkey import Pubkey

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    address TEXT NOT NULL, slot INTEGER NOT NULL, account BLOB, PRIMARY KEY (address, slot)
);
CREATE TABLE IF NOT EXISTS transactions (
    seq INTEGER PRIMARY KEY, signature TEXT NOT NULL UNIQUE, slot INTEGER NOT NULL,
    block_time INTEGER NOT NULL, tx BLOB NOT NULL, meta TEXT NOT NULL, failed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS address_signatures (
    address TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (address, seq)
);
"""


@dataclass(frozen=True, slots=True)
class TxRow:
    """A landed transaction as stored."""

    seq: int
    signature: str
    slot: int
    block_time: int
    tx: bytes
    meta_json: str
    failed: bool


@dataclass(frozen=True, slots=True)
class Landed:
    """What one executed transaction changes in the record."""

    signature: str
    slot: int
    block_time: int
    tx: bytes
    meta_json: str
    failed: bool
    addresses: tuple[Pubkey, ...]
    accounts: tuple[tuple[Pubkey, Account | None], ...]


class ChainStore:
    """The SQLite record of one embedded chain."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The server runs on one event loop thread; SQLite's default check is kept.
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power loss may lose the last commits, never corrupt.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def get_meta(self, key: str) -> str | None:
        """Return a stored scalar, or None."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, values: dict[str, str]) -> None:
        """Store scalars in one transaction."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items()
            )

    def put_accounts(self, slot: int, accounts: Iterable[tuple[Pubkey, Account | None]]) -> None:
        """Record account versions outside a transaction (genesis funding)."""
        with self._transaction():
            self._put_accounts(slot, accounts)

    def record(self, landed: Landed) -> int:
        """Store a landed transaction and the accounts it left; return its sequence number."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO transactions (signature, slot, block_time, tx, meta, failed) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (landed.signature, landed.slot, landed.block_time, landed.tx,
                 landed.meta_json, int(landed.failed)),
            )  # fmt: skip
            seq = int(cursor.lastrowid or 0)
            self._db.executemany(
                "INSERT OR IGNORE INTO address_signatures (address, seq) VALUES (?, ?)",
                ((str(address), seq) for address in landed.addresses),
            )
            self._put_accounts(landed.slot, landed.accounts)
        return seq

    def latest_accounts(self) -> Iterator[tuple[Pubkey, Account | None]]:
        """Yield every recorded address with its latest version (None: deleted)."""
        rows = self._db.execute(
            "SELECT address, account FROM accounts a WHERE slot = "
            "(SELECT max(slot) FROM accounts b WHERE b.address = a.address)"
        )
        for address, blob in rows:
            yield Pubkey.from_string(address), _account(blob)

    def account_at(self, address: Pubkey, slot: int) -> tuple[bool, Account | None]:
        """Return `(recorded, account)`: the latest version at or before `slot`.

        `recorded` is False when the address has no version at all (never touched: its
        state is the genesis state); an address first touched after `slot` is recorded
        and did not exist then.
        """
        row = self._db.execute(
            "SELECT account FROM accounts WHERE address = ? AND slot <= ? "
            "ORDER BY slot DESC LIMIT 1",
            (str(address), slot),
        ).fetchone()
        if row is not None:
            return True, _account(row[0])
        seen = self._db.execute(
            "SELECT 1 FROM accounts WHERE address = ? LIMIT 1", (str(address),)
        ).fetchone()
        return seen is not None, None

    def prune(self, finalized_slot: int) -> None:
        """Drop versions no commitment can read any more (older than the newest finalized)."""
        with self._transaction():
            self._db.execute(
                "DELETE FROM accounts WHERE slot < (SELECT max(slot) FROM accounts b "
                "WHERE b.address = accounts.address AND b.slot <= ?)",
                (finalized_slot,),
            )

    def transaction(self, signature: str) -> TxRow | None:
        """Return the landed transaction with this signature, or None."""
        row = self._db.execute(
            "SELECT seq, signature, slot, block_time, tx, meta, failed FROM transactions "
            "WHERE signature = ?",
            (signature,),
        ).fetchone()
        return None if row is None else _tx_row(row)

    def signature_seq(self, signature: str) -> int | None:
        """Return the sequence number of a landed signature, or None."""
        row = self._db.execute(
            "SELECT seq FROM transactions WHERE signature = ?", (signature,)
        ).fetchone()
        return None if row is None else int(row[0])

    def signatures_for_address(
        self, address: str, max_slot: int, before_seq: int | None, until_seq: int | None,
        limit: int,
    ) -> list[TxRow]:  # fmt: skip
        """Return the address's transactions, newest first, in `(until, before)`."""
        rows = self._db.execute(
            "SELECT t.seq, t.signature, t.slot, t.block_time, t.tx, t.meta, t.failed "
            "FROM address_signatures s JOIN transactions t ON t.seq = s.seq "
            "WHERE s.address = ? AND t.slot <= ? AND s.seq < ? AND s.seq > ? "
            "ORDER BY s.seq DESC LIMIT ?",
            (address, max_slot, before_seq if before_seq is not None else 2**62,
             until_seq if until_seq is not None else -1, limit),
        )  # fmt: skip
        return [_tx_row(row) for row in rows]

    def transaction_count(self) -> int:
        """Return how many transactions landed."""
        return int(self._db.execute("SELECT count(*) FROM transactions").fetchone()[0])

    def _put_accounts(self, slot: int, accounts: Iterable[tuple[Pubkey, Account | None]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO accounts (address, slot, account) VALUES (?, ?, ?)",
            ((str(key), slot, None if acc is None else bytes(acc)) for key, acc in accounts),
        )

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    """BEGIN ... COMMIT, or ROLLBACK on an exception (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _account(blob: bytes | None) -> Account | None:
    return None if blob is None else Account.from_bytes(blob)


def _tx_row(row: tuple[object, ...]) -> TxRow:
    seq, signature, slot, block_time, tx, meta, failed = row
    assert isinstance(tx, bytes)
    return TxRow(int(str(seq)), str(signature), int(str(slot)), int(str(block_time)), tx,
                 str(meta), bool(failed))  # fmt: skip
