"""The exchange program's client side, pure: PDAs and instructions (and, re-exported from
`program_idl`, the program id, constants, error names and account decoders).

Every instruction is built by anchorpy from the committed IDL
(`programs/exchange/idl/exchange.json`), so the wire format has one source: a test runs
these instructions in the Solana VM against the built program. Nothing here performs
I/O beyond reading the IDL once; sending is the chain layer's work.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from functools import cache

from anchorpy.coder.instruction import InstructionCoder
from anchorpy.program.context import Context
from anchorpy.program.namespace.instruction import _InstructionFn
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.chain.program_idl import (
    ERRORS,
    I64_MAX,
    I64_MIN,
    IDL_PATH,
    MAX_SETTLE_ENTRIES,
    PROGRAM_ID,
    REPLAY_WINDOW_IDS,
    STATUS_ACTIVE,
    STATUS_HALTED,
    SYSTEM_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    U64_MAX,
    AssetState,
    ExchangeState,
    MarketState,
    ReplayWindowState,
    decode_asset,
    decode_exchange,
    decode_market,
    error_name,
    load_idl,
    program_id_from,
)

__all__ = [
    "ERRORS",
    "I64_MAX",
    "I64_MIN",
    "IDL_PATH",
    "MAX_SETTLE_ENTRIES",
    "PROGRAM_ID",
    "REPLAY_WINDOW_IDS",
    "STATUS_ACTIVE",
    "STATUS_HALTED",
    "SYSTEM_PROGRAM_ID",
    "TOKEN_PROGRAM_ID",
    "U64_MAX",
    "AssetState",
    "ExchangeState",
    "MarketState",
    "ReplayWindowState",
    "asset_pda",
    "authority_pda",
    "chain_market_id",
    "decode_asset",
    "decode_exchange",
    "decode_market",
    "error_name",
    "exchange_pda",
    "fee_vault_pda",
    "instruction",
    "ix_add_asset",
    "ix_add_market",
    "ix_initialize",
    "ix_register_vault",
    "ix_rotate_authorities",
    "ix_settle",
    "ix_update_asset",
    "ix_update_exchange",
    "ix_withdraw",
    "ix_withdraw_approved",
    "load_idl",
    "market_pda",
    "program_id_from",
    "vault_pda",
]


# PDAs (seeds: docs/custody.md, "The program"; integers little-endian).


def _u64(name: str, value: int) -> int:
    if not 0 <= value <= U64_MAX:
        raise ValueError(f"{name} must be a u64, got {value}")
    return value


def _le8(name: str, value: int) -> bytes:
    return _u64(name, value).to_bytes(8, "little")


def _pda(program_id: Pubkey, *seeds: bytes) -> Pubkey:
    return Pubkey.find_program_address(list(seeds), program_id)[0]


def exchange_pda(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """Return the exchange config's address, `["exchange"]`."""
    return _pda(program_id, b"exchange")


def authority_pda(program_id: Pubkey = PROGRAM_ID) -> Pubkey:
    """Return the vault authority's address, `["authority"]`: the SPL owner of every vault."""
    return _pda(program_id, b"authority")


def asset_pda(program_id: Pubkey, mint: Pubkey) -> Pubkey:
    """Return an asset config's address, `["asset", mint]`."""
    return _pda(program_id, b"asset", bytes(mint))


def fee_vault_pda(program_id: Pubkey, mint: Pubkey) -> Pubkey:
    """Return an asset's fee vault token account, `["fee", mint]`."""
    return _pda(program_id, b"fee", bytes(mint))


def vault_pda(program_id: Pubkey, mint: Pubkey, account_id: AccountId) -> Pubkey:
    """Return a user's vault token account (their deposit address for `mint`)."""
    return _pda(program_id, b"vault", bytes(mint), _le8("account_id", account_id))


def market_pda(program_id: Pubkey, market_id: int) -> Pubkey:
    """Return a market config's address, `["market", market_id_le8]`."""
    return _pda(program_id, b"market", _le8("market_id", market_id))


CHAIN_MARKET_ID_MASK = 2**63 - 1
"""A chain market id keeps its top bit clear so it fits PostgreSQL's BIGINT."""


def chain_market_id(base_mint: Pubkey, quote_mint: Pubkey) -> int:
    """Return a market's id on chain, derived from its two mints.

    The embedded chain is shared by every test database, each with its own mints, so an
    id from the mints cannot collide where the databases' market ids do. The order of the
    mints counts: (A, B) and (B, A) are two markets.
    """
    digest = hashlib.sha256(b"clob-market" + bytes(base_mint) + bytes(quote_mint)).digest()
    return int.from_bytes(digest[:8], "little") & CHAIN_MARKET_ID_MASK


# Instructions, built by anchorpy from the IDL.


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


@cache
def _builders(program_id: Pubkey) -> dict[str, _InstructionFn]:
    idl = load_idl()
    coder = InstructionCoder(idl)
    return {_snake(ix.name): _InstructionFn(ix, coder.build, program_id) for ix in idl.instructions}


def instruction(
    program_id: Pubkey,
    name: str,
    args: Sequence[object],
    accounts: Mapping[str, Pubkey],
    remaining: Sequence[AccountMeta] = (),
) -> Instruction:
    """Build any instruction of the IDL from its snake_case name, args and accounts.

    The named builders below derive the PDAs; this is the raw form they share (tests
    use it to pass wrong accounts on purpose).

    Raises:
        KeyError: No such instruction, or an account is missing.
    """
    ctx = Context(accounts=dict(accounts), remaining_accounts=list(remaining))
    return _builders(program_id)[name](*args, ctx=ctx)


def ix_initialize(
    program_id: Pubkey, payer: Pubkey, admin: Pubkey, operator: Pubkey
) -> Instruction:
    """Create the exchange config (payer and admin sign)."""
    accounts = {
        "payer": payer,
        "admin": admin,
        "operator": operator,
        "exchange": exchange_pda(program_id),
        "system_program": SYSTEM_PROGRAM_ID,
    }
    return instruction(program_id, "initialize", [], accounts)


def ix_add_asset(
    program_id: Pubkey,
    *,
    admin: Pubkey,
    payer: Pubkey,
    mint: Pubkey,
    cap_atoms: int,
    window_slots: int,
) -> Instruction:
    """Accept `mint` with a rolling outflow cap of `cap_atoms` per `window_slots` (admin)."""
    accounts = {
        "admin": admin,
        "payer": payer,
        "exchange": exchange_pda(program_id),
        "asset": asset_pda(program_id, mint),
        "mint": mint,
        "fee_vault": fee_vault_pda(program_id, mint),
        "vault_authority": authority_pda(program_id),
        "token_program": TOKEN_PROGRAM_ID,
        "system_program": SYSTEM_PROGRAM_ID,
    }
    args = [_u64("cap_atoms", cap_atoms), _u64("window_slots", window_slots)]
    return instruction(program_id, "add_asset", args, accounts)


def ix_add_market(
    program_id: Pubkey,
    *,
    admin: Pubkey,
    payer: Pubkey,
    market_id: int,
    base_mint: Pubkey,
    quote_mint: Pubkey,
) -> Instruction:
    """Create market `market_id` over two added assets (admin)."""
    accounts = {
        "admin": admin,
        "payer": payer,
        "exchange": exchange_pda(program_id),
        "market": market_pda(program_id, market_id),
        "base_asset": asset_pda(program_id, base_mint),
        "quote_asset": asset_pda(program_id, quote_mint),
        "system_program": SYSTEM_PROGRAM_ID,
    }
    return instruction(program_id, "add_market", [_u64("market_id", market_id)], accounts)


def ix_register_vault(
    program_id: Pubkey, *, operator: Pubkey, mint: Pubkey, account_id: AccountId
) -> Instruction:
    """Create `account_id`'s vault (deposit address) for `mint`; the operator pays."""
    accounts = {
        "operator": operator,
        "exchange": exchange_pda(program_id),
        "asset": asset_pda(program_id, mint),
        "mint": mint,
        "vault": vault_pda(program_id, mint, account_id),
        "vault_authority": authority_pda(program_id),
        "token_program": TOKEN_PROGRAM_ID,
        "system_program": SYSTEM_PROGRAM_ID,
    }
    args = [_u64("account_id", account_id)]
    return instruction(program_id, "register_vault", args, accounts)


def _withdraw_accounts(
    program_id: Pubkey, mint: Pubkey, account_id: AccountId, destination: Pubkey
) -> dict[str, Pubkey]:
    return {
        "exchange": exchange_pda(program_id),
        "asset": asset_pda(program_id, mint),
        "vault": vault_pda(program_id, mint, account_id),
        "destination": destination,
        "vault_authority": authority_pda(program_id),
        "token_program": TOKEN_PROGRAM_ID,
    }


def _withdraw_args(withdrawal_id: int, account_id: AccountId, amount_atoms: int) -> list[int]:
    return [
        _u64("withdrawal_id", withdrawal_id),
        _u64("account_id", account_id),
        _u64("amount_atoms", amount_atoms),
    ]


def ix_withdraw(
    program_id: Pubkey,
    *,
    operator: Pubkey,
    mint: Pubkey,
    account_id: AccountId,
    withdrawal_id: int,
    amount_atoms: int,
    destination: Pubkey,
) -> Instruction:
    """Pay withdrawal `withdrawal_id` from `account_id`'s vault to the `destination`
    token account, within the asset's rolling cap (operator)."""
    accounts = {
        "operator": operator,
        **_withdraw_accounts(program_id, mint, account_id, destination),
    }
    args = _withdraw_args(withdrawal_id, account_id, amount_atoms)
    return instruction(program_id, "withdraw", args, accounts)


def ix_withdraw_approved(
    program_id: Pubkey,
    *,
    operator: Pubkey,
    admin: Pubkey,
    mint: Pubkey,
    account_id: AccountId,
    withdrawal_id: int,
    amount_atoms: int,
    destination: Pubkey,
) -> Instruction:
    """Pay a withdrawal over the cap: operator and admin sign."""
    accounts = {
        "operator": operator,
        "admin": admin,
        **_withdraw_accounts(program_id, mint, account_id, destination),
    }
    args = _withdraw_args(withdrawal_id, account_id, amount_atoms)
    return instruction(program_id, "withdraw_approved", args, accounts)


def ix_settle(
    program_id: Pubkey,
    *,
    operator: Pubkey,
    market_id: int,
    batch_id: int,
    entries: Sequence[tuple[Pubkey, int]],
) -> Instruction:
    """Apply a netted batch: `(vault token account, delta in atoms)` per vault.

    Raises:
        ValueError: More than `MAX_SETTLE_ENTRIES` entries, or a delta outside i64.
    """
    if len(entries) > MAX_SETTLE_ENTRIES:
        raise ValueError(f"a batch holds at most {MAX_SETTLE_ENTRIES} entries")
    deltas = [int(delta) for _, delta in entries]
    if any(not I64_MIN <= d <= I64_MAX for d in deltas):
        raise ValueError("every delta must be an i64")
    accounts = {
        "operator": operator,
        "exchange": exchange_pda(program_id),
        "market": market_pda(program_id, market_id),
        "vault_authority": authority_pda(program_id),
        "token_program": TOKEN_PROGRAM_ID,
    }
    remaining = [AccountMeta(vault, is_signer=False, is_writable=True) for vault, _ in entries]
    args = [_u64("market_id", market_id), _u64("batch_id", batch_id), deltas]
    return instruction(program_id, "settle", args, accounts, remaining)


def ix_update_exchange(program_id: Pubkey, *, admin: Pubkey, status: int) -> Instruction:
    """Halt (`STATUS_HALTED`) or resume (`STATUS_ACTIVE`) the exchange (admin)."""
    accounts = {"admin": admin, "exchange": exchange_pda(program_id)}
    return instruction(program_id, "update_exchange", [status], accounts)


def ix_update_asset(
    program_id: Pubkey, *, admin: Pubkey, mint: Pubkey, cap_atoms: int, window_slots: int
) -> Instruction:
    """Change an asset's rolling outflow cap (admin)."""
    accounts = {
        "admin": admin,
        "exchange": exchange_pda(program_id),
        "asset": asset_pda(program_id, mint),
    }
    args = [_u64("cap_atoms", cap_atoms), _u64("window_slots", window_slots)]
    return instruction(program_id, "update_asset", args, accounts)


def ix_rotate_authorities(
    program_id: Pubkey, *, admin: Pubkey, new_admin: Pubkey, new_operator: Pubkey
) -> Instruction:
    """Install `new_admin` (who signs too) and `new_operator` (admin)."""
    accounts = {"admin": admin, "new_admin": new_admin, "exchange": exchange_pda(program_id)}
    return instruction(program_id, "rotate_authorities", [new_operator], accounts)
