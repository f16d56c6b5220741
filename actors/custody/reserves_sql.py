"""The reserves' terms that PostgreSQL holds, read in one read-only REPEATABLE READ
transaction (`reconcile.py` says in which order the terms are read and why).

Per vault, a vault being (account id, asset symbol), with account None for the asset's
fee vault:

- deposits pending: recorded from the chain, no ledger credit of their reference yet;
- withdrawals debited: a `withdrawal:<id>` debit, no `withdrawal-refund:<id>` credit, not
  `confirmed` (with their sends, whose statuses say whether they left the vault);
- unsettled: the net of the trades not in a settlement that is `confirmed` or
  `finalized` (a trade with no settlement, or in one of any other status), per trade:
  the buyer gets `base` and pays `quote + buyer's fee`, the seller gives `base` and gets
  `quote - seller's fee`, the quote's fee vault gets both fees (a maker rebate is a
  negative fee), base atoms = `qty_lots * lot_size_atoms`;
- the journal's head and the projection's mark per market (the trades table is exact
  only when the projection reached the head the ledger applied).

The unsettled query reads every trade not settled: before settlement runs, every trade
ever made (a sequential scan of `trades`); once it runs, the few not yet landed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from actors.accounts import AccountId
from actors.custody.reserves import VaultKey

_SUPPLY = """SELECT a.symbol, s.credited_atoms::text, s.debited_atoms::text
    FROM ledger_supply s JOIN assets a USING (asset_id)"""
_PENDING = """SELECT d.account_id, a.symbol, sum(d.amount_atoms)::text
    FROM deposits d JOIN assets a USING (asset_id)
    WHERE d.status = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_credits c
        WHERE c.reference = 'deposit:' || d.tx_signature || ':' || d.address)
    GROUP BY d.account_id, a.symbol"""
_DEBITED = """SELECT w.withdrawal_id, w.account_id, a.symbol, ld.amount_atoms::text
    FROM ledger_debits ld
    JOIN withdrawals w ON ld.reference = 'withdrawal:' || w.withdrawal_id
    JOIN assets a ON a.asset_id = w.asset_id
    WHERE w.status <> 'confirmed' AND NOT EXISTS (SELECT 1 FROM ledger_credits c
        WHERE c.reference = 'withdrawal-refund:' || w.withdrawal_id)"""
_SENDS = """SELECT withdrawal_id, tx_signature FROM withdrawal_sends
    WHERE withdrawal_id = ANY($1::bigint[])"""
_ASSETS = "SELECT symbol, decimals, mint FROM assets"
_VAULTS = """SELECT da.account_id, a.symbol, da.address FROM deposit_addresses da
    JOIN assets a USING (asset_id) WHERE a.mint IS NOT NULL"""
# Only columns of migration 0002; 'finalized' arrives with settlement's migration.
_UNSETTLED = """SELECT v.account_id, a.symbol, sum(v.delta)::text
    FROM trades t
    JOIN markets m ON m.market_id = t.market_id
    CROSS JOIN LATERAL (SELECT
        CASE t.taker_side WHEN 'buy' THEN t.taker_account_id ELSE t.maker_account_id END
            AS buyer,
        CASE t.taker_side WHEN 'buy' THEN t.maker_account_id ELSE t.taker_account_id END
            AS seller,
        CASE t.taker_side WHEN 'buy' THEN t.taker_fee_atoms ELSE t.maker_fee_atoms END
            AS buyer_fee,
        CASE t.taker_side WHEN 'buy' THEN t.maker_fee_atoms ELSE t.taker_fee_atoms END
            AS seller_fee,
        t.qty_lots::numeric * m.lot_size_atoms AS base) p
    CROSS JOIN LATERAL (VALUES
        (p.buyer, m.base_asset_id, p.base),
        (p.buyer, m.quote_asset_id, -(t.quote_qty_atoms + p.buyer_fee)),
        (p.seller, m.base_asset_id, -p.base),
        (p.seller, m.quote_asset_id, t.quote_qty_atoms - p.seller_fee),
        (NULL::bigint, m.quote_asset_id, t.maker_fee_atoms + t.taker_fee_atoms)
    ) v(account_id, asset_id, delta)
    JOIN assets a ON a.asset_id = v.asset_id
    WHERE t.settlement_id IS NULL OR t.settlement_id IN (SELECT settlement_id
        FROM settlements WHERE status NOT IN ('confirmed', 'finalized'))
    GROUP BY v.account_id, a.symbol"""
_HEADS = """SELECT m.symbol, j.seq, coalesce(p.projected_seq, 0)
    FROM markets m
    CROSS JOIN LATERAL (SELECT seq FROM journal WHERE journal.market_id = m.market_id
        ORDER BY seq DESC LIMIT 1) j
    LEFT JOIN market_projection_marks p ON p.market_id = m.market_id"""


@dataclass(frozen=True, slots=True)
class ReserveRecords:
    """What one PostgreSQL snapshot says, atoms.

    Attributes:
        supply: Per asset, (credited, debited) of `ledger_supply`.
        pending: Deposits pending per vault.
        debited: Per withdrawal id, (its vault, atoms).
        sends: Per withdrawal id, its signatures.
        unsettled: The unsettled trades' net per vault (zeros left out).
        vaults: The registered deposit addresses (base58) of the assets with a mint.
        decimals: Each asset's decimals.
        mints: Each asset's mint (base58), for those that have one.
        heads: Per market symbol, (journal head, projection mark).
    """

    supply: dict[str, tuple[int, int]]
    pending: dict[VaultKey, int]
    debited: dict[int, tuple[VaultKey, int]]
    sends: dict[int, list[str]]
    unsettled: dict[VaultKey, int]
    vaults: dict[VaultKey, str]
    decimals: dict[str, int]
    mints: dict[str, str]
    heads: dict[str, tuple[int, int]]


def _account(value: object) -> AccountId | None:
    return None if value is None else AccountId(int(str(value)))


async def _per_vault(conn: asyncpg.Connection, query: str) -> dict[VaultKey, int]:
    out = {(_account(r[0]), r[1]): int(r[2]) for r in await conn.fetch(query)}
    return {key: atoms for key, atoms in out.items() if atoms}


async def read_records(conn: asyncpg.Connection) -> ReserveRecords:
    """Read every term PostgreSQL holds in one read-only REPEATABLE READ transaction."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        supply = {r[0]: (int(r[1]), int(r[2])) for r in await conn.fetch(_SUPPLY)}
        debited = {
            int(r[0]): ((_account(r[1]), r[2]), int(r[3])) for r in await conn.fetch(_DEBITED)
        }
        sends: dict[int, list[str]] = defaultdict(list)
        for r in await conn.fetch(_SENDS, list(debited)):
            sends[int(r[0])].append(r[1])
        assets = await conn.fetch(_ASSETS)
        vaults: dict[VaultKey, str] = {
            (AccountId(int(r[0])), r[1]): r[2] for r in await conn.fetch(_VAULTS)
        }
        heads = {r[0]: (int(r[1]), int(r[2])) for r in await conn.fetch(_HEADS)}
        return ReserveRecords(
            supply, await _per_vault(conn, _PENDING), debited, dict(sends),
            await _per_vault(conn, _UNSETTLED), vaults, {r[0]: int(r[1]) for r in assets},
            {r[0]: r[2] for r in assets if r[2] is not None}, heads,
        )  # fmt: skip
