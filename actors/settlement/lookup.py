"""Address lookup tables of the settle transactions: one per market, through JSON-RPC.

A table holds the market's fixed accounts (exchange, market, vault authority, token
program, both fee vaults) and its vaults, added as they appear, at most
`MAX_TABLE_ADDRESSES`. A settle transaction compiled against it names each of those
accounts by a one-byte index instead of its 32-byte key, so more vaults fit 1,232 bytes
(the program's `MAX_SETTLE_ENTRIES` then bounds a netted instruction, not the packet).

The operator is the table's authority and signs its extensions; the payer pays the rent.
New entries are usable from the slot after their extension (the lookup table program's
rule), so `ensure_table` waits for that before it answers. The table's address depends on
the slot it was created at: the caller keeps it (the settlement records, per market).

The lookup table program's instructions are built here (bincode: a u32 tag, then the
fields), as neither solders nor `solana` has builders for them.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable, Sequence

from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM_ID
from solders.address_lookup_table_account import (
    AddressLookupTable,
    AddressLookupTableAccount,
    derive_lookup_table_address,
)
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from actors.chain.client import ChainClient
from actors.chain.program import (
    SYSTEM_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    authority_pda,
    exchange_pda,
    fee_vault_pda,
    market_pda,
)
from actors.chain.records import Commitment
from actors.settlement.tx import SettleContext

MAX_TABLE_ADDRESSES = 256
"""A table's capacity (a one-byte index)."""
MAX_EXTEND_ADDRESSES = 24
"""Addresses per extension: 24 keys of 32 bytes keep it well inside 1,232 bytes."""
_CREATE, _EXTEND = 0, 2  # the program's instruction tags


def ix_create_table(
    authority: Pubkey, payer: Pubkey, recent_slot: int
) -> tuple[Instruction, Pubkey]:
    """Return the instruction creating a table of `authority` at `recent_slot` (a slot
    in the SlotHashes sysvar), and the table's address."""
    table, bump = derive_lookup_table_address(authority, recent_slot)
    accounts = [
        AccountMeta(table, is_signer=False, is_writable=True),
        AccountMeta(authority, is_signer=False, is_writable=False),
        AccountMeta(payer, is_signer=True, is_writable=True),
        AccountMeta(SYSTEM_PROGRAM_ID, is_signer=False, is_writable=False),
    ]
    data = struct.pack("<IQB", _CREATE, recent_slot, bump)
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, accounts), table


def ix_extend_table(
    table: Pubkey, authority: Pubkey, payer: Pubkey, addresses: Sequence[Pubkey]
) -> Instruction:
    """Return the instruction appending `addresses` to a table (the authority signs)."""
    accounts = [
        AccountMeta(table, is_signer=False, is_writable=True),
        AccountMeta(authority, is_signer=True, is_writable=False),
        AccountMeta(payer, is_signer=True, is_writable=True),
        AccountMeta(SYSTEM_PROGRAM_ID, is_signer=False, is_writable=False),
    ]
    data = struct.pack("<IQ", _EXTEND, len(addresses)) + b"".join(bytes(a) for a in addresses)
    return Instruction(LOOKUP_TABLE_PROGRAM_ID, data, accounts)


def market_accounts(ctx: SettleContext) -> list[Pubkey]:
    """Return the accounts every settle transaction of the market names besides its
    vaults (program ids are left out: a transaction cannot load those from a table)."""
    pid = ctx.program_id
    return [
        exchange_pda(pid), market_pda(pid, ctx.chain_market_id), authority_pda(pid),
        TOKEN_PROGRAM_ID, fee_vault_pda(pid, ctx.quote_mint), fee_vault_pda(pid, ctx.base_mint),
    ]  # fmt: skip


async def load_table(
    client: ChainClient, table: Pubkey, commitment: Commitment | None = None
) -> AddressLookupTable | None:
    """Return a table's state, or None if there is no such table (no account, or one that
    is not a lookup table)."""
    data = await client.account_data(table, commitment)
    if data is None:
        return None
    try:
        return AddressLookupTable.deserialize(data)
    except ValueError:  # not a table's data (InvalidAccountData, UninitializedAccount)
        return None


async def create_table(
    client: ChainClient,
    *,
    payer: Keypair,
    authority: Keypair,
    record: Callable[[Pubkey], Awaitable[None]] | None = None,
) -> Pubkey:
    """Create an empty table of `authority` (the payer pays its rent); return its address.

    `record` is awaited with the address before the creation is sent, so that a caller
    keeping the address never loses a table it paid for; an address recorded for a
    creation that did not land has no table behind it (`load_table` answers None).

    Raises:
        ChainError: The creation was refused, failed or expired.
    """
    recent = await client.slot("finalized")
    create, table = ix_create_table(authority.pubkey(), payer.pubkey(), recent)
    if record is not None:
        await record(table)
    await _send(client, payer, [create])
    return table


async def ensure_table(
    client: ChainClient,
    *,
    payer: Keypair,
    authority: Keypair,
    table: Pubkey | None,
    addresses: Sequence[Pubkey],
    timeout_s: float = 30.0,
) -> AddressLookupTableAccount:
    """Return a usable table holding `addresses`, creating or extending it as needed.

    Addresses already in the table are not added again; those past the table's capacity
    are left out (a transaction names them by their key). Answers once every entry is
    usable (the confirmed slot is past the last extension).

    Args:
        client: The chain.
        payer: Pays the fees and the table's rent.
        authority: The table's authority (the operator).
        table: The market's table, None to create one.
        addresses: What the table must hold (`market_accounts` first, then vaults).
        timeout_s: Bound on the wait for the new entries to become usable.

    Raises:
        ChainError: A transaction was refused, failed or expired (see `actors.chain`).
        ValueError: `table` is not a lookup table.
        TimeoutError: The entries did not become usable in time.
    """
    if table is None:
        table = await create_table(client, payer=payer, authority=authority)
    state = await load_table(client, table, "confirmed")
    if state is None:
        raise ValueError(f"{table} is not an address lookup table")
    held = list(state.addresses)
    known = set(held)
    missing = list(dict.fromkeys(a for a in addresses if a not in known))
    missing = missing[: MAX_TABLE_ADDRESSES - len(held)]
    for start in range(0, len(missing), MAX_EXTEND_ADDRESSES):
        chunk = missing[start : start + MAX_EXTEND_ADDRESSES]
        extend = ix_extend_table(table, authority.pubkey(), payer.pubkey(), chunk)
        await _send(client, payer, [extend], authority)
    async with asyncio.timeout(timeout_s):
        return await _usable(client, table, len(held) + len(missing))


async def _usable(client: ChainClient, table: Pubkey, count: int) -> AddressLookupTableAccount:
    while True:
        state = await load_table(client, table, "confirmed")
        warm = state is not None and await client.slot("confirmed") > state.meta.last_extended_slot
        if state is not None and warm and len(state.addresses) >= count:
            return AddressLookupTableAccount(table, list(state.addresses))
        await asyncio.sleep(0.05)


async def _send(
    client: ChainClient, payer: Keypair, instructions: list[Instruction], *signers: Keypair
) -> None:
    blockhash = await client.latest_blockhash("confirmed")
    message = MessageV0.try_compile(payer.pubkey(), instructions, [], blockhash.blockhash)
    keys = {k.pubkey(): k for k in (payer, *signers)}
    signature = await client.send_transaction(VersionedTransaction(message, list(keys.values())))
    await client.wait_for(signature, blockhash.last_valid_block_height, "confirmed")
