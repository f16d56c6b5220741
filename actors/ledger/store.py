"""PostgreSQL adapter of the ledger shards: every ledger SQL statement lives here.

A shard's state is its accounts' rows (`account_id % shard_count = shard_id`) of
`balances`, `ledger_reservations`, `ledger_credits` and `ledger_debits`, its
`fee_balances` row per asset and its `ledger_shard_marks`. `save` writes a set of changes
with one statement (`clob_ledger_save_json`, JSON documents of every table's rows: one
round trip).
Amounts are `NUMERIC(38,0)`: they are read as text and written as JSON integers (exact at
any size) so that no `Decimal` (let alone a float) ever touches a money path.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from actors import jsonx
from actors.accounts import AccountId
from actors.contracts import JsonDict
from actors.engine import MarketSpec
from actors.ledger.core import Changes, LedgerCore
from actors.ledger.rules import LedgerRequestError, OrderReservation
from actors.markets_repo import asset_ids, load_markets

SYSTEM_ROLE = "clob_system"
_OWN = "account_id % $2 = $1"


class UnknownAccountError(LedgerRequestError):
    """The account does not exist (accounts are created by the API, never by the ledger)."""


class UnknownAssetError(LedgerRequestError):
    """The asset does not exist."""


class UnknownMarketError(LedgerRequestError):
    """The market does not exist."""


class Registry:
    """Symbol <-> id maps of assets and markets, and the markets' specs (cached)."""

    def __init__(self) -> None:
        self.asset_ids: dict[str, int] = {}
        self.asset_symbols: dict[int, str] = {}
        self.market_ids: dict[str, int] = {}
        self.market_symbols: dict[int, str] = {}
        self.specs: dict[str, MarketSpec] = {}

    async def refresh(self, conn: asyncpg.Connection) -> None:
        """Reload every asset and market."""
        self.asset_ids = await asset_ids(conn)
        self.asset_symbols = {i: s for s, i in self.asset_ids.items()}
        markets = await load_markets(conn)
        self.market_ids = {s: r.market_id for s, r in markets.items()}
        self.market_symbols = {r.market_id: s for s, r in markets.items()}
        self.specs = {s: r.spec for s, r in markets.items()}

    async def spec(self, conn: asyncpg.Connection, market: str) -> MarketSpec:
        """Return a market's spec, reloading the registry once if it is unknown.

        Raises:
            UnknownMarketError: No such market.
        """
        if market not in self.specs:
            await self.refresh(conn)
        if market not in self.specs:
            raise UnknownMarketError(f"unknown market {market!r}")
        return self.specs[market]

    async def asset_id(self, conn: asyncpg.Connection, asset: str) -> int:
        """Return an asset's id, reloading the registry once if it is unknown.

        Raises:
            UnknownAssetError: No such asset.
        """
        if asset not in self.asset_ids:
            await self.refresh(conn)
        if asset not in self.asset_ids:
            raise UnknownAssetError(f"unknown asset {asset!r}")
        return self.asset_ids[asset]


async def use_system_role(conn: asyncpg.Connection) -> None:
    """Act as `clob_system` (BYPASSRLS) when the login role may; else stay as it is."""
    if await conn.fetchval("SELECT pg_has_role(current_user, $1, 'MEMBER')", SYSTEM_ROLE):
        await conn.execute(f"SET ROLE {SYSTEM_ROLE}")


async def connect(database_url: str) -> asyncpg.Connection:
    """Open a shard's connection, acting as `clob_system` when the login role may."""
    conn = await asyncpg.connect(database_url)
    await use_system_role(conn)
    return conn


async def load(
    conn: asyncpg.Connection, registry: Registry, shard_id: int, shard_count: int
) -> LedgerCore:
    """Load a shard's state into a fresh `LedgerCore`."""
    await registry.refresh(conn)
    core = LedgerCore(shard_id, shard_count)
    asset = registry.asset_symbols
    rows = await conn.fetch(
        "SELECT account_id, asset_id, available_atoms::text AS a, locked_atoms::text AS l "
        f"FROM balances WHERE {_OWN}", shard_id, shard_count,
    )  # fmt: skip
    for r in rows:
        core.load_balance(r["account_id"], asset[r["asset_id"]], int(r["a"]), int(r["l"]))
    for r in await conn.fetch(
        "SELECT asset_id, amount_atoms::text AS a FROM fee_balances WHERE shard_id = $1", shard_id
    ):
        core.load_fees(asset[r["asset_id"]], int(r["a"]))
    for r in await conn.fetch(
        "SELECT asset_id, sum(amount_atoms)::text AS a FROM ledger_credits "
        f"WHERE {_OWN} GROUP BY asset_id", shard_id, shard_count,
    ):  # fmt: skip
        core.load_credited(asset[r["asset_id"]], int(r["a"]))
    for r in await conn.fetch(
        "SELECT asset_id, sum(amount_atoms)::text AS a FROM ledger_debits "
        f"WHERE {_OWN} GROUP BY asset_id", shard_id, shard_count,
    ):  # fmt: skip
        core.load_debited(asset[r["asset_id"]], int(r["a"]))
    for r in await conn.fetch(
        "SELECT market_id, applied_journal_seq FROM ledger_shard_marks "
        "WHERE shard_id = $1 AND shard_count = $2", shard_id, shard_count,
    ):  # fmt: skip
        core.load_mark(registry.market_symbols[r["market_id"]], r["applied_journal_seq"])
    await _load_reservations(conn, registry, core)
    return core


async def _load_reservations(conn: asyncpg.Connection, reg: Registry, core: LedgerCore) -> None:
    rows = await conn.fetch(
        "SELECT market_id, order_id, account_id, asset_id, side, reserved_atoms::text AS r, "
        "pending_atoms::text AS p, limit_price_ticks, open_qty_lots, quote_budget_tick_lots, "
        "fee_numerator::text AS f, accepted, request_key "
        f"FROM ledger_reservations WHERE {_OWN}", core.shard_id, core.shard_count,
    )  # fmt: skip
    for r in rows:
        core.load_reservation(
            OrderReservation(
                reg.market_symbols[r["market_id"]], r["order_id"], r["account_id"], r["side"],
                reg.asset_symbols[r["asset_id"]], int(r["r"]), int(r["p"]),
                r["limit_price_ticks"], r["open_qty_lots"], r["quote_budget_tick_lots"],
                int(r["f"]), r["accepted"], r["request_key"],
            )
        )  # fmt: skip


async def save(
    conn: asyncpg.Connection, registry: Registry, core: LedgerCore, changes: Changes
) -> None:
    """Write a set of changes with one statement (`clob_ledger_save_json`, migrations
    0011 and 0017): atomic on its own, and one round trip. Does nothing when nothing
    changed."""
    if not any(
        (changes.credits, changes.debits, changes.balances, changes.fees, changes.dropped,
         changes.reservations, changes.marks)
    ):  # fmt: skip
        return
    aid = registry.asset_ids
    mid = registry.market_ids
    documents = (
        [{"reference": ref, "account_id": acct, "asset_id": aid[asset], "amount": amount}
         for ref, acct, asset, amount in changes.credits],
        [{"account_id": acct, "asset_id": aid[asset], "available": available, "locked": locked}
         for acct, asset, available, locked in changes.balances],
        [{"asset_id": aid[asset], "amount": amount} for asset, amount in changes.fees],
        [{"market_id": mid[market], "order_id": oid} for market, oid in changes.dropped],
        [_row(registry, r) for r in changes.reservations],
        [{"market_id": mid[market], "seq": seq} for market, seq in changes.marks],
        [{"reference": ref, "account_id": acct, "asset_id": aid[asset], "amount": amount}
         for ref, acct, asset, amount in changes.debits],
    )  # fmt: skip
    await conn.execute(_SAVE, core.shard_id, core.shard_count, *(jsonx.dumps(d) for d in documents))


_SAVE = "SELECT clob_ledger_save_json($1, $2, $3, $4, $5, $6, $7, $8, $9)"


def _row(registry: Registry, r: OrderReservation) -> JsonDict:
    return {
        "market_id": registry.market_ids[r.market], "order_id": r.order_id,
        "account_id": r.account_id, "asset_id": registry.asset_ids[r.asset], "side": r.side,
        "reserved": r.reserved_atoms, "pending": r.pending_atoms,
        "limit_price": r.limit_price_ticks, "open_qty": r.open_qty_lots,
        "budget": r.quote_budget_tick_lots, "fee_numerator": r.fee_numerator,
        "accepted": r.accepted, "request_key": r.request_key,
    }  # fmt: skip


StoredEntry = tuple[int, Any, Any]
"""A journal row as the ledger reads it: `(seq, events, reservation)` in the journal's
stored form (JSON values; `actors.journal_codec.ledger_entry` types them)."""


async def journal_entries(
    conn: asyncpg.Connection, market_id: int, after_seq: int, before_seq: int | None = None
) -> list[StoredEntry]:
    """Return `(seq, events, reservation)` of a market's journal rows after `after_seq`
    (and before `before_seq` if given), in seq order, as stored: `reservation` is None
    when the command reserved nothing (or was journaled before reservations were)."""
    rows = await conn.fetch(
        "SELECT seq, payload->'events' AS events, payload->'reservation' AS r FROM journal "
        "WHERE market_id = $1 AND seq > $2 AND ($3::bigint IS NULL OR seq < $3) ORDER BY seq",
        market_id, after_seq, before_seq,
    )  # fmt: skip
    return [
        (r["seq"], jsonx.loads(r["events"]) if r["events"] else [], _reservation(r["r"]))
        for r in rows
    ]


async def journal_heads(conn: asyncpg.Connection) -> dict[int, int]:
    """Return the last journal seq of every market that has journaled anything."""
    rows = await conn.fetch(
        "SELECT m.market_id, j.seq FROM markets m CROSS JOIN LATERAL (SELECT seq FROM journal "
        "WHERE journal.market_id = m.market_id ORDER BY seq DESC LIMIT 1) j"
    )
    return {int(r["market_id"]): int(r["seq"]) for r in rows}


def _reservation(raw: str | None) -> JsonDict | None:
    value = jsonx.loads(raw) if raw else None
    return value if isinstance(value, dict) else None


async def acquire_epoch(conn: asyncpg.Connection, shard_id: int) -> int:
    """Start a new incarnation of a shard: bump its epoch (committed on return; waits for
    journal appends that rely on the old one, see migration 0009) and return it."""
    epoch: int = await conn.fetchval("SELECT clob_acquire_ledger_epoch($1)", shard_id)
    return epoch


class LedgerLayoutError(Exception):
    """The ledger's state is partitioned over another number of shards."""


DEFAULT_SHARD_COUNT = 2
"""Shards of a new ledger when none is configured (two Ray calls per shard and market pass
make more shards cost CPU on a small machine; a cluster sets its own)."""


async def claim_shard_count(conn: asyncpg.Connection, shard_count: int | None) -> int:
    """Return the ledger's number of shards: the one recorded, else record and return
    `shard_count` (`DEFAULT_SHARD_COUNT` if None).

    Raises:
        LedgerLayoutError: `shard_count` is not the recorded number (the accounts, marks
            and epochs belong to those shards; see migration 0012).
    """
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO ledger_layout (shard_count) VALUES ($1) ON CONFLICT DO NOTHING",
            shard_count or DEFAULT_SHARD_COUNT,
        )
        recorded: int = await conn.fetchval("SELECT shard_count FROM ledger_layout")
    if shard_count is not None and recorded != shard_count:
        raise LedgerLayoutError(
            f"the ledger is partitioned over {recorded} shards and cannot start with "
            f"{shard_count}: set ledger_shards = {recorded} (CLOB_LEDGER_SHARDS) or leave it "
            "unset; changing the count needs the ledger state moved between shards, which "
            "is not supported"
        )
    return recorded


async def check_account(conn: asyncpg.Connection, account_id: AccountId) -> None:
    """Raise `UnknownAccountError` unless the account exists."""
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM accounts WHERE account_id = $1)", account_id
    ):
        raise UnknownAccountError(f"unknown account {account_id}: create it first")


async def credit_terms(conn: asyncpg.Connection, reference: str) -> tuple[int, str, int] | None:
    """Return (account, asset, amount atoms) of the credit made with a reference, if any."""
    row = await conn.fetchrow(
        "SELECT c.account_id, a.symbol, c.amount_atoms FROM ledger_credits c "
        "JOIN assets a USING (asset_id) WHERE c.reference = $1",
        reference,
    )
    return None if row is None else (int(row[0]), str(row[1]), int(row[2]))


async def debit_terms(conn: asyncpg.Connection, reference: str) -> tuple[int, str, int] | None:
    """Return (account, asset, amount atoms) of the debit made with a reference, if any."""
    row = await conn.fetchrow(
        "SELECT d.account_id, a.symbol, d.amount_atoms FROM ledger_debits d "
        "JOIN assets a USING (asset_id) WHERE d.reference = $1",
        reference,
    )
    return None if row is None else (int(row[0]), str(row[1]), int(row[2]))


SUPPLY_BOUND_CONSTRAINT = "ledger_supply_u64"
"""The CHECK (migrations 0015, 0017) that keeps an asset's supply (credited - debited)
within a u64."""


async def supply_total(conn: asyncpg.Connection, asset_id: int) -> int:
    """Return what the ledger holds of an asset over every shard, credited minus debited,
    in atoms (`ledger_supply`, migrations 0015 and 0017)."""
    total = await conn.fetchval(
        "SELECT credited_atoms - debited_atoms FROM ledger_supply WHERE asset_id = $1", asset_id
    )
    return 0 if total is None else int(total)
