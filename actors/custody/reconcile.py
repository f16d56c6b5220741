"""Reconciliation: gather the terms of the reserves formula (`reserves.py`) per asset from
the chain, the ledger shards and the custody records, and keep the last answer a while.

The terms come from three places that change independently, so one gathering reads them
in an order that makes a move between two reads detectable, and tries again when it sees
one (up to `attempts` times; the answer says whether its reads agreed, `consistent`):

1. the ledger's totals from every shard (each shard's sums after every committed journal
   entry: available, locked, fees, credited, debited);
2. in one read-only REPEATABLE READ transaction of PostgreSQL: `ledger_supply` (the sums of
   every credit and debit), the deposits pending (recorded, not credited: no ledger credit
   of their reference), the withdrawals debited (a `withdrawal:<id>` debit, no
   `withdrawal-refund:<id>` credit, not `confirmed`) with their sends, and the vaults;
3. on chain, at `confirmed`: the statuses of those sends, every vault's token balance, then
   the statuses again.

The shards' totals agree with the snapshot when their credited and debited sums equal
`ledger_supply`'s (no credit or debit in between) and each asset's `available + locked +
fees` equals `credited - debited` (no trade half applied across shards). The chain's reads
agree when no send changed its state between the two status reads around the balances.
A withdrawal whose send landed without error at `confirmed` has left its vault even if the
sender has not marked it confirmed yet, so it is not in flight.

Before settlement (issue 16) `unsettled` is 0 for every asset: trades move only the
ledger, and each trade's net per asset is zero over the asset's vaults.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from solders.pubkey import Pubkey
from solders.signature import Signature

from actors.chain.client import ChainClient
from actors.chain.program import fee_vault_pda
from actors.custody.reserves import AssetReserves, reserves

ShardTotals = Mapping[str, Mapping[str, int]]
"""One shard's `totals()`: per asset symbol, available, locked, fees, credited, debited."""

_SUPPLY = """SELECT a.symbol, s.credited_atoms::text, s.debited_atoms::text
    FROM ledger_supply s JOIN assets a USING (asset_id)"""
_PENDING = """SELECT a.symbol, sum(d.amount_atoms)::text
    FROM deposits d JOIN assets a USING (asset_id)
    WHERE d.status = 'pending' AND NOT EXISTS (SELECT 1 FROM ledger_credits c
        WHERE c.reference = 'deposit:' || d.tx_signature || ':' || d.address)
    GROUP BY a.symbol"""
_DEBITED = """SELECT w.withdrawal_id, a.symbol, ld.amount_atoms::text
    FROM ledger_debits ld
    JOIN withdrawals w ON ld.reference = 'withdrawal:' || w.withdrawal_id
    JOIN assets a ON a.asset_id = w.asset_id
    WHERE w.status <> 'confirmed' AND NOT EXISTS (SELECT 1 FROM ledger_credits c
        WHERE c.reference = 'withdrawal-refund:' || w.withdrawal_id)"""
_SENDS = """SELECT withdrawal_id, tx_signature FROM withdrawal_sends
    WHERE withdrawal_id = ANY($1::bigint[])"""
_DECIMALS = "SELECT symbol, decimals FROM assets"
_VAULTS = """SELECT a.symbol, a.mint, da.address FROM assets a
    LEFT JOIN deposit_addresses da USING (asset_id) WHERE a.mint IS NOT NULL"""


@dataclass(frozen=True, slots=True)
class ReservesReport:
    """One reconciliation: per asset, the formula's terms and their difference.

    Attributes:
        assets: One row per asset (by symbol).
        decimals: Each asset's decimals (for display in whole units).
        vaults: Token accounts read on chain (users' vaults and fee vaults).
        consistent: The reads agreed (nothing moved between them): a difference is real.
        attempts: Gatherings made for this answer.
        as_of_ms: When it was gathered, Unix ms.
    """

    assets: tuple[AssetReserves, ...]
    decimals: Mapping[str, int]
    vaults: int
    consistent: bool
    attempts: int
    as_of_ms: int

    @property
    def balanced(self) -> bool:
        """Tell whether every asset's difference is zero."""
        return all(row.difference == 0 for row in self.assets)


@dataclass(frozen=True, slots=True)
class _Records:
    """What one PostgreSQL snapshot says."""

    supply: dict[str, tuple[int, int]]  # asset: (credited, debited)
    pending: dict[str, int]
    debited: dict[int, tuple[str, int]]  # withdrawal id: (asset, atoms)
    sends: dict[int, list[str]]  # withdrawal id: its signatures
    vaults: dict[str, list[Pubkey]]  # asset: its token accounts (fee vault first)
    decimals: dict[str, int]


async def _read_records(conn: asyncpg.Connection, program_id: Pubkey) -> _Records:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        supply = {r[0]: (int(r[1]), int(r[2])) for r in await conn.fetch(_SUPPLY)}
        pending = {r[0]: int(r[1]) for r in await conn.fetch(_PENDING)}
        debited = {int(r[0]): (r[1], int(r[2])) for r in await conn.fetch(_DEBITED)}
        sends: dict[int, list[str]] = defaultdict(list)
        for r in await conn.fetch(_SENDS, list(debited)):
            sends[int(r[0])].append(r[1])
        decimals = {r[0]: int(r[1]) for r in await conn.fetch(_DECIMALS)}
        vaults: dict[str, list[Pubkey]] = {}
        for symbol, mint, address in await conn.fetch(_VAULTS):
            if symbol not in vaults:
                vaults[symbol] = [fee_vault_pda(program_id, Pubkey.from_string(mint))]
            if address is not None:
                vaults[symbol].append(Pubkey.from_string(address))
    return _Records(supply, pending, debited, dict(sends), vaults, decimals)


async def _landed(client: ChainClient, sends: Mapping[int, Sequence[str]]) -> frozenset[int]:
    """Return the withdrawals one of whose sends landed without error at `confirmed`."""
    pairs = [(wid, sig) for wid, sigs in sends.items() for sig in sigs]
    statuses = await client.signature_statuses([Signature.from_string(s) for _, s in pairs])
    return frozenset(
        wid for (wid, _), status in zip(pairs, statuses, strict=True)
        if status is not None and status.err is None and status.reached("confirmed")
    )  # fmt: skip


async def _on_chain(client: ChainClient, vaults: Mapping[str, Sequence[Pubkey]]) -> dict[str, int]:
    flat = [address for addresses in vaults.values() for address in addresses]
    balances = await client.token_balances(flat, "confirmed")
    return {asset: sum(balances.get(a) or 0 for a in addresses)
            for asset, addresses in vaults.items()}  # fmt: skip


def _sum_totals(shards: Sequence[ShardTotals]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for totals in shards:
        for asset, terms in totals.items():
            for term, atoms in terms.items():
                out[asset][term] += int(atoms)
    return {asset: dict(terms) for asset, terms in out.items()}


def ledger_agrees(
    ledger: Mapping[str, Mapping[str, int]], supply: Mapping[str, tuple[int, int]]
) -> bool:
    """Tell whether the shards' summed totals match a snapshot's `ledger_supply` and
    conserve every asset (so no credit, debit or trade moved between the reads)."""
    for asset in set(ledger) | set(supply):
        terms = ledger.get(asset, {})
        credited, debited = terms.get("credited", 0), terms.get("debited", 0)
        if (credited, debited) != supply.get(asset, (0, 0)):
            return False
        held = terms.get("available", 0) + terms.get("locked", 0) + terms.get("fees", 0)
        if held != credited - debited:
            return False
    return True


async def gather_once(
    conn: asyncpg.Connection,
    client: ChainClient,
    program_id: Pubkey,
    shard_totals: Callable[[], Awaitable[Sequence[ShardTotals]]],
) -> tuple[list[AssetReserves], dict[str, int], int, bool]:
    """Read every term once (see the module doc).

    Returns:
        The rows, the assets' decimals, the vaults read, and whether the reads agreed.
    """
    ledger = _sum_totals(await shard_totals())
    records = await _read_records(conn, program_id)
    before = await _landed(client, records.sends)
    on_chain = await _on_chain(client, records.vaults)
    after = await _landed(client, records.sends)
    in_flight: dict[str, int] = defaultdict(int)
    for wid, (asset, atoms) in records.debited.items():
        if wid not in after:
            in_flight[asset] += atoms
    rows = reserves(on_chain, ledger, records.pending, in_flight)
    agreed = before == after and ledger_agrees(ledger, records.supply)
    vaults = sum(len(v) for v in records.vaults.values())
    return rows, records.decimals, vaults, agreed


async def gather(
    conn: asyncpg.Connection,
    client: ChainClient,
    program_id: Pubkey,
    shard_totals: Callable[[], Awaitable[Sequence[ShardTotals]]],
    *,
    attempts: int = 3,
    pause_s: float = 0.2,
) -> ReservesReport:
    """Reconcile: gather until the reads agree or `attempts` ran out; answer the last.

    Args:
        conn: A `clob_system` connection, outside a transaction.
        client: The chain.
        program_id: The exchange program (its fee vaults are PDAs of it).
        shard_totals: Every ledger shard's `totals()`.
        attempts: Gatherings at most.
        pause_s: Pause between two gatherings.
    """
    for attempt in range(1, attempts + 1):
        rows, decimals, vaults, agreed = await gather_once(conn, client, program_id, shard_totals)
        if agreed or attempt == attempts:
            break
        await asyncio.sleep(pause_s)
    return ReservesReport(tuple(rows), decimals, vaults, agreed, attempt, int(time.time() * 1000))


class ReservesCache:
    """The last report, shared: a caller accepts one up to `max_age_s` old, and callers
    that arrive while a gathering runs wait for that one (one gathering at a time, however
    many ask, so the public endpoint cannot be used to load the chain).

    Args:
        gather: Make a fresh report.
    """

    def __init__(self, gather: Callable[[], Awaitable[ReservesReport]]) -> None:
        self._gather = gather
        self._last: tuple[float, ReservesReport] | None = None
        self._running: asyncio.Task[ReservesReport] | None = None

    async def get(self, max_age_s: float) -> ReservesReport:
        """Return a report at most `max_age_s` old (0: gathered after this call)."""
        started = time.monotonic()
        if self._last is not None and started - self._last[0] <= max_age_s:
            return self._last[1]
        running = self._running
        if running is None or running.done() or max_age_s <= 0:
            running = self._running = asyncio.get_running_loop().create_task(self._fresh())
        return await asyncio.shield(running)

    async def _fresh(self) -> ReservesReport:
        report = await self._gather()
        self._last = (time.monotonic(), report)
        return report
