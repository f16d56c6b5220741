"""Reconciliation: gather the terms of the reserves formula (`reserves.py`) per asset and
per vault from the chain, the ledger shards and PostgreSQL, and keep the last answer a
while.

The terms come from three places that change independently, so one gathering reads them
in an order that makes a move between two reads detectable, and tries again when it sees
one (up to `attempts` times; the answer says whether its reads agreed, `consistent`):

1. every shard's holdings (`LedgerShard.holdings`: each account's balance per asset, the
   sums, the journal marks; after every committed journal entry);
2. in one read-only REPEATABLE READ transaction of PostgreSQL (`reserves_sql.py`):
   `ledger_supply`, the deposits pending, the withdrawals debited with their sends, the
   unsettled trades, the vaults, the journal heads and the projection marks;
3. on chain, at `confirmed`: the statuses of those sends, every vault's token balance, then
   the statuses again.

The reads agree when the shards' credited and debited sums equal `ledger_supply`'s (no
credit or debit in between), each asset's `available + locked + fees` equals `credited -
debited` (no trade half applied across shards), every shard applied each market's journal
up to the head the snapshot saw and the trades table (the projection) reached it too (no
trade between the reads, none missing from the unsettled term), and no send changed its
state between the two status reads around the balances. A withdrawal whose send landed
without error at `confirmed` has left its vault even if the sender has not marked it
confirmed yet, so it is not in flight.

Per vault the check is exact when trading is quiet (nothing moved between the reads) and
every settlement that moved tokens is `confirmed` or `finalized`: a batch that landed and
is not yet marked so counts as unsettled while the vaults already moved.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg
from solders.pubkey import Pubkey
from solders.signature import Signature

from actors.chain.client import ChainClient
from actors.chain.program import fee_vault_pda, vault_pda
from actors.custody.reserves import AssetReserves, VaultKey, VaultReserves, reserves, vault_reserves
from actors.custody.reserves_sql import ReserveRecords, read_records
from actors.ledger.rules import Holdings

MAX_DIFFERING_SHOWN = 20
"""Vaults that differ listed in a report (the largest differences first)."""


@dataclass(frozen=True, slots=True)
class ReservesReport:
    """One reconciliation: per asset, the formula's terms and their difference; per vault,
    how many were checked and the ones that differ.

    Attributes:
        assets: One row per asset (by symbol).
        decimals: Each asset's decimals (for display in whole units).
        vaults: Token accounts read on chain (users' vaults and fee vaults).
        consistent: The reads agreed (nothing moved between them): a difference is real.
        attempts: Gatherings made for this answer.
        as_of_ms: When it was gathered, Unix ms.
        vaults_checked: Vaults whose terms were compared.
        vaults_differing: Vaults whose difference is not zero.
        differing: The first `MAX_DIFFERING_SHOWN` of them, largest difference first.
    """

    assets: tuple[AssetReserves, ...]
    decimals: Mapping[str, int]
    vaults: int
    consistent: bool
    attempts: int
    as_of_ms: int
    vaults_checked: int = 0
    vaults_differing: int = 0
    differing: tuple[VaultReserves, ...] = ()

    @property
    def balanced(self) -> bool:
        """Tell whether every asset's and every vault's difference is zero."""
        return self.vaults_differing == 0 and all(row.difference == 0 for row in self.assets)


@dataclass(frozen=True, slots=True)
class Gathered:
    """One gathering's answer.

    Attributes:
        assets: The per-asset rows.
        vaults: Every vault's row.
        decimals: Each asset's decimals.
        accounts_read: Token accounts read on chain.
        agreed: Whether the reads agreed (see the module doc).
    """

    assets: list[AssetReserves]
    vaults: list[VaultReserves]
    decimals: dict[str, int]
    accounts_read: int
    agreed: bool


async def _landed(client: ChainClient, sends: Mapping[int, Sequence[str]]) -> frozenset[int]:
    """Return the withdrawals one of whose sends landed without error at `confirmed`."""
    pairs = [(wid, sig) for wid, sigs in sends.items() for sig in sigs]
    statuses = await client.signature_statuses([Signature.from_string(s) for _, s in pairs])
    return frozenset(
        wid for (wid, _), status in zip(pairs, statuses, strict=True)
        if status is not None and status.err is None and status.reached("confirmed")
    )  # fmt: skip


def _sum_totals(shards: Sequence[Holdings]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for holdings in shards:
        for asset, totals in holdings.totals.items():
            for term, atoms in totals._asdict().items():
                out[asset][term] += int(atoms)
    return {asset: dict(terms) for asset, terms in out.items()}


def _vault_ledger(shards: Sequence[Holdings]) -> dict[VaultKey, int]:
    """Return each user's vault's ledger term (available + locked) and each fee vault's
    (the fee balances of every shard)."""
    out: dict[VaultKey, int] = defaultdict(int)
    for holdings in shards:
        for (account_id, asset), atoms in holdings.accounts.items():
            out[(account_id, asset)] += atoms
        for asset, totals in holdings.totals.items():
            out[(None, asset)] += totals.fees
    return dict(out)


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


def marks_agree(marks: Iterable[Mapping[str, int]], heads: Mapping[str, tuple[int, int]]) -> bool:
    """Tell whether every shard applied, and the projection wrote, each market's journal
    up to the head a snapshot saw (`heads`: market -> (head, projection mark))."""
    marks = list(marks)
    for market, (head, projected) in heads.items():
        if projected != head or any(m.get(market, 0) != head for m in marks):
            return False
    return True


def _addresses(
    program_id: Pubkey, records: ReserveRecords, keys: Iterable[VaultKey]
) -> dict[VaultKey, Pubkey]:
    """Return the address of every asset's fee vault, of every vault the records list, and
    of every other vault a term names whose asset has a mint (its PDA: unregistered, it
    holds nothing, or tokens someone sent to a vault the records do not know)."""
    mints = {asset: Pubkey.from_string(mint) for asset, mint in records.mints.items()}
    out: dict[VaultKey, Pubkey] = {
        (None, asset): fee_vault_pda(program_id, mint) for asset, mint in mints.items()
    }
    out.update((key, Pubkey.from_string(a)) for key, a in records.vaults.items())
    for key in keys:
        account_id, asset = key
        if key not in out and account_id is not None and asset in mints:
            out[key] = vault_pda(program_id, mints[asset], account_id)
    return out


def _by_asset(terms: Mapping[VaultKey, int]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for (_, asset), atoms in terms.items():
        out[asset] += atoms
    return dict(out)


def _only(terms: Mapping[VaultKey, int], keys: Mapping[VaultKey, object]) -> dict[VaultKey, int]:
    return {key: atoms for key, atoms in terms.items() if key in keys}


async def gather_once(
    conn: asyncpg.Connection,
    client: ChainClient,
    program_id: Pubkey,
    shard_holdings: Callable[[], Awaitable[Sequence[Holdings]]],
) -> Gathered:
    """Read every term once (see the module doc) and apply the formula per asset and per
    vault (vaults of assets without a mint are not on chain and are left out)."""
    holdings = list(await shard_holdings())
    ledger, vault_ledger = _sum_totals(holdings), _vault_ledger(holdings)
    records = await read_records(conn)
    before = await _landed(client, records.sends)
    keys = set(vault_ledger) | set(records.pending) | set(records.unsettled)
    keys |= {key for key, _ in records.debited.values()}
    addresses = _addresses(program_id, records, keys)
    balances = await client.token_balances(list(addresses.values()), "confirmed")
    after = await _landed(client, records.sends)
    on_chain = {key: balances.get(address) or 0 for key, address in addresses.items()}
    in_flight: dict[VaultKey, int] = defaultdict(int)
    for wid, (key, atoms) in records.debited.items():
        if wid not in after:
            in_flight[key] += atoms
    rows = reserves(_by_asset(on_chain), ledger, _by_asset(records.pending),
                    _by_asset(in_flight), _by_asset(records.unsettled))  # fmt: skip
    vaults = vault_reserves(
        {key: str(address) for key, address in addresses.items()}, on_chain=on_chain,
        ledger=_only(vault_ledger, addresses), deposits_pending=_only(records.pending, addresses),
        withdrawals_in_flight=_only(in_flight, addresses),
        unsettled=_only(records.unsettled, addresses),
    )  # fmt: skip
    agreed = (before == after and ledger_agrees(ledger, records.supply)
              and marks_agree((h.marks for h in holdings), records.heads))  # fmt: skip
    return Gathered(rows, vaults, records.decimals, len(addresses), agreed)


def report_of(gathered: Gathered, attempts: int, as_of_ms: int) -> ReservesReport:
    """Return a gathering as a report (the vaults that differ, largest first, at most
    `MAX_DIFFERING_SHOWN`)."""
    differing = sorted((v for v in gathered.vaults if v.difference),
                       key=lambda v: (-abs(v.difference), v.asset, v.account_id or 0))  # fmt: skip
    return ReservesReport(
        tuple(gathered.assets), gathered.decimals, gathered.accounts_read, gathered.agreed,
        attempts, as_of_ms, len(gathered.vaults), len(differing),
        tuple(differing[:MAX_DIFFERING_SHOWN]),
    )  # fmt: skip


async def gather(
    conn: asyncpg.Connection,
    client: ChainClient,
    program_id: Pubkey,
    shard_holdings: Callable[[], Awaitable[Sequence[Holdings]]],
    *,
    attempts: int = 3,
    pause_s: float = 0.2,
) -> ReservesReport:
    """Reconcile: gather until the reads agree or `attempts` ran out; answer the last.

    Args:
        conn: A `clob_system` connection, outside a transaction.
        client: The chain.
        program_id: The exchange program (its vaults are PDAs of it).
        shard_holdings: Every ledger shard's `holdings()`.
        attempts: Gatherings at most.
        pause_s: Pause between two gatherings.
    """
    for attempt in range(1, attempts + 1):
        gathered = await gather_once(conn, client, program_id, shard_holdings)
        if gathered.agreed or attempt == attempts:
            break
        await asyncio.sleep(pause_s)
    return report_of(gathered, attempt, int(time.time() * 1000))


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
