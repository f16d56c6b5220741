"""Per market, the address lookup table of the batcher's settle transactions (setting
`settlement.lookup_tables`; the chain side of a table is `lookup.py`).

A market has one table: its fixed accounts (`lookup.market_accounts`) first, then its
vaults as batches bring them, up to `MAX_TABLE_ADDRESSES` (a vault past that is named by
its key). `MarketTables.context` makes the table hold a batch's vaults (creating or
extending it, then waiting until the new entries are usable) and returns the market's
`SettleContext` compiled against it; `MarketTables.fits` is the planner's byte check with
that table.

The planner closes a batch before the batch is sent, so `fits` counts a vault as in the
table when it is there already or there is room for it (the batch's new vaults go in
before it is built). The room is promised to that vault: a vault a check accepted keeps
its place, and an extension adds a batch's promised vaults first and its others only
into room no promise holds, so neither a batch sent earlier nor the batch's own vaults
that were measured as named by key can take it (this matters near a full table only: a
table that filled under 2-instruction batches once gave a batch measured at most 1,232
bytes a larger real transaction).
Until the market's table is known (`load` or `context`), `fits` measures without a table:
smaller batches, never one too large.

The table's address is kept in PostgreSQL (`settlement_lookup_tables`, migration 0022),
recorded before the creation is sent, so a restarted batcher extends the same table. An
address with no usable table behind it (the creation never landed, another authority, a
deactivated table) is replaced by a new table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import asyncpg
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.chain.client import ChainClient
from actors.settlement.lookup import (
    MAX_TABLE_ADDRESSES,
    create_table,
    ensure_table,
    load_table,
    market_accounts,
)
from actors.settlement.trades import VaultKey
from actors.settlement.tx import MAX_TX_BYTES, SettleContext, tx_size, vault_of

log = logging.getLogger(__name__)

Fits = Callable[[Sequence[Sequence[VaultKey]]], bool]
LoadAddress = Callable[[int], Awaitable[str | None]]
SaveAddress = Callable[[int, str], Awaitable[None]]

_IN_USE = 2**64 - 1  # a table's deactivation slot until it is deactivated
_SIZING_KEY = Pubkey.default()  # a table key of the right size, before the table exists

_LOAD = "SELECT address FROM settlement_lookup_tables WHERE market_id = $1"
_SAVE = """INSERT INTO settlement_lookup_tables (market_id, address) VALUES ($1, $2)
           ON CONFLICT (market_id) DO UPDATE SET address = EXCLUDED.address, created_at = now()"""


async def load_table_address(conn: asyncpg.Connection, market_id: int) -> str | None:
    """Return the address of the market's lookup table, or None if it has none yet."""
    address: str | None = await conn.fetchval(_LOAD, market_id)
    return address


async def save_table_address(conn: asyncpg.Connection, market_id: int, address: str) -> None:
    """Record (or replace) the address of the market's lookup table."""
    await conn.execute(_SAVE, market_id, address)


@dataclass(slots=True)
class TableState:
    """What this process knows of one market's table.

    Attributes:
        key: Its address; None while there is no table (`context` creates it).
        held: Its entries, all usable, in table order.
        promised: Addresses a `fits` check counted in that are not entries yet.
    """

    key: Pubkey | None = None
    held: dict[Pubkey, None] = field(default_factory=dict)
    promised: dict[Pubkey, None] = field(default_factory=dict)

    def counted(self, addresses: Iterable[Pubkey]) -> tuple[list[Pubkey], list[Pubkey]]:
        """Return the addresses a transaction would load from the table (held, promised,
        or new while there is room left), and the new ones among them."""
        room = MAX_TABLE_ADDRESSES - len(self.held) - len(self.promised)
        inside: list[Pubkey] = []
        new: list[Pubkey] = []
        for address in dict.fromkeys(addresses):
            if address in self.held or address in self.promised:
                inside.append(address)
            elif len(new) < room:
                new.append(address)
                inside.append(address)
        return inside, new

    def promise(self, addresses: Iterable[Pubkey]) -> None:
        """Keep room for `addresses` (a batch counting on them was planned)."""
        self.promised.update(dict.fromkeys(addresses))

    def extension(self, wanted: Iterable[Pubkey]) -> list[Pubkey]:
        """Return the addresses of `wanted` to add to the table: every promised one, then
        the others, in order, while room that no promise holds is left.

        A batch's unpromised vaults must not take the place of promised ones: a batch
        planned before or after may count on those (the planner measured it so), and
        would be larger than measured without them.
        """
        missing = [a for a in dict.fromkeys(wanted) if a not in self.held]
        promised = [a for a in missing if a in self.promised]
        free = max(0, MAX_TABLE_ADDRESSES - len(self.held) - len(self.promised))
        return [*promised, *[a for a in missing if a not in self.promised][:free]]

    def holding(self, table: AddressLookupTableAccount) -> None:
        """Take the table's usable entries; the promises it fulfils are kept."""
        self.key = table.key
        self.held = dict.fromkeys(table.addresses)
        self.promised = {a: None for a in self.promised if a not in self.held}

    def account(self) -> AddressLookupTableAccount:
        """Return the table as a message compiles against it."""
        if self.key is None:
            raise ValueError("the market has no lookup table yet")
        return AddressLookupTableAccount(self.key, list(self.held))


class MarketTables:
    """The markets' lookup tables of one batcher (see the module doc).

    Args:
        client: The chain.
        payer: Pays the tables' rent and their transactions' fees.
        operator: The tables' authority (signs their extensions).
        load: Returns a market's recorded table address (`load_table_address`).
        save: Records a market's table address (`save_table_address`).
    """

    def __init__(
        self, client: ChainClient, payer: Keypair, operator: Keypair, load: LoadAddress,
        save: SaveAddress,
    ) -> None:  # fmt: skip
        self._client, self._payer, self._operator = client, payer, operator
        self._load, self._save = load, save
        self._states: dict[int, TableState] = {}
        self._lock = asyncio.Lock()  # one creation or extension at a time

    async def load(self, market_id: int) -> None:
        """Learn the market's table (its recorded address, then the chain) so that `fits`
        counts it; creates nothing. Call it before planning the market's batches."""
        async with self._lock:
            await self._state(market_id)

    async def context(
        self, ctx: SettleContext, market_id: int, vaults: Sequence[Pubkey]
    ) -> SettleContext:
        """Return `ctx` compiled against the market's table, once the table holds the
        market's accounts and `vaults` (the promised ones, then others while room no
        promise holds is left: `TableState.extension`) and they are usable.

        Raises:
            ChainError: A creation or extension was refused, failed or expired.
            TimeoutError: New entries did not become usable in time.
        """
        async with self._lock:
            state = await self._state(market_id)
            added = state.extension([*market_accounts(ctx), *vaults])
            if state.key is None or added:
                key = state.key or await self._create(market_id)
                state.holding(await ensure_table(self._client, payer=self._payer,
                                                 authority=self._operator, table=key,
                                                 addresses=added))  # fmt: skip
            return replace(ctx, lookup_tables=(state.account(),))

    def fits(self, ctx: SettleContext, market_id: int) -> Fits:
        """Return the planner's byte check of the market with its table: the size of a
        real compiled transaction, counting a vault in the table when it is there or
        there is room for it (a check that passes keeps that room)."""
        fixed = market_accounts(ctx)

        def check(vault_sets: Sequence[Sequence[VaultKey]]) -> bool:
            state = self._states.get(market_id)
            if state is None:  # not known yet: as if there were no table
                return tx_size(ctx, vault_sets) <= MAX_TX_BYTES
            vaults = (vault_of(ctx, key) for keys in vault_sets for key in keys)
            inside, new = state.counted([*fixed, *vaults])
            table = AddressLookupTableAccount(state.key or _SIZING_KEY, inside)
            if tx_size(replace(ctx, lookup_tables=(table,)), vault_sets) > MAX_TX_BYTES:
                return False
            state.promise(new)
            return True

        return check

    async def _state(self, market_id: int) -> TableState:
        state = self._states.get(market_id)
        if state is None:
            state = await self._read(market_id)
            self._states[market_id] = state
        return state

    async def _read(self, market_id: int) -> TableState:
        """Return the state of the market's recorded table (empty if it has no usable one)."""
        address = await self._load(market_id)
        if address is None:
            return TableState()
        key = Pubkey.from_string(address)
        table = await load_table(self._client, key, "confirmed")
        if table is None or table.meta.authority != self._operator.pubkey() or (
            table.meta.deactivation_slot != _IN_USE
        ):  # fmt: skip
            log.warning("market %d: recorded lookup table %s is not usable; a new one will be "
                        "made", market_id, address)  # fmt: skip
            return TableState()
        # An extension just before a restart may not be usable yet: wait for it.
        usable = await ensure_table(self._client, payer=self._payer, authority=self._operator,
                                    table=key, addresses=[])  # fmt: skip
        state = TableState()
        state.holding(usable)
        return state

    async def _create(self, market_id: int) -> Pubkey:
        async def record(key: Pubkey) -> None:
            await self._save(market_id, str(key))

        key = await create_table(self._client, payer=self._payer, authority=self._operator,
                                 record=record)  # fmt: skip
        log.info("market %d: created lookup table %s", market_id, key)
        return key
