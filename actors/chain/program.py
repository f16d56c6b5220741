"""The exchange program's client side, pure: PDAs, instructions and account decoders.

Every instruction is built by anchorpy from the committed IDL
(`programs/exchange/idl/exchange.json`), so the wire format has one source: a test runs
these instructions in the Solana VM against the built program. Nothing here performs
I/O beyond reading the IDL once; sending is the chain layer's work.

The program id comes from settings (`CLOB_PROGRAM_ID`) where one is configured; the
default, `PROGRAM_ID`, is the IDL's `metadata.address` (the dev keypair committed at
`programs/exchange/program-keypair.json`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from anchorpy.coder.accounts import AccountsCoder
from anchorpy.coder.instruction import InstructionCoder
from anchorpy.program.context import Context
from anchorpy.program.namespace.instruction import _InstructionFn
from anchorpy_core.idl import Idl
from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from actors.accounts import AccountId

IDL_PATH: Final = Path(__file__).resolve().parents[2] / "programs/exchange/idl/exchange.json"
TOKEN_PROGRAM_ID: Final = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
SYSTEM_PROGRAM_ID: Final = Pubkey.from_string("11111111111111111111111111111111")
STATUS_ACTIVE: Final = 0
STATUS_HALTED: Final = 1
REPLAY_WINDOW_IDS: Final = 1024
MAX_SETTLE_ENTRIES: Final = 32
"""Entries one `settle` accepts (the program's `MAX_SETTLE_ENTRIES`)."""
U64_MAX: Final = 2**64 - 1
I64_MIN: Final = -(2**63)
I64_MAX: Final = 2**63 - 1


@cache
def load_idl() -> Idl:
    """Return the committed IDL (read once)."""
    return Idl.from_json(IDL_PATH.read_text())


@cache
def _idl_json() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(IDL_PATH.read_text())
    return loaded


PROGRAM_ID: Final = Pubkey.from_string(_idl_json()["metadata"]["address"])

ERRORS: Final[Mapping[int, str]] = {e["code"]: e["name"] for e in _idl_json()["errors"]}
"""The program's custom error codes (from 6000) and their names, from the IDL."""


def program_id_from(configured: str | None) -> Pubkey:
    """Return the program id a setting names (`CLOB_PROGRAM_ID`), or `PROGRAM_ID`.

    Raises:
        ValueError: The setting is not a base58 public key.
    """
    if configured is None:
        return PROGRAM_ID
    try:
        return Pubkey.from_string(configured)
    except ValueError as exc:
        raise ValueError(f"CLOB_PROGRAM_ID is not a base58 public key: {configured!r}") from exc


def error_name(code: int) -> str | None:
    """Return the name of one of the program's custom error codes, or None."""
    return ERRORS.get(code)


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


# Account decoders.


@dataclass(frozen=True, slots=True)
class ReplayWindowState:
    """Ids applied: `base` (the lowest still accepted) and a ring of bits."""

    base: int
    bits: bytes

    def contains(self, id_: int) -> bool:
        """Return whether `id_` is inside the window and applied."""
        if not self.base <= id_ < self.base + REPLAY_WINDOW_IDS:
            return False
        pos = id_ % REPLAY_WINDOW_IDS
        return bool(self.bits[pos // 8] & (1 << (pos % 8)))


@dataclass(frozen=True, slots=True)
class ExchangeState:
    """The `Exchange` config."""

    admin: Pubkey
    operator: Pubkey
    authority: Pubkey
    status: int
    withdrawals: ReplayWindowState


@dataclass(frozen=True, slots=True)
class AssetState:
    """An `Asset` config: its mint, fee vault and rolling outflow cap."""

    mint: Pubkey
    fee_vault: Pubkey
    cap_atoms: int
    window_slots: int
    used_atoms: int
    last_slot: int
    decimals: int


@dataclass(frozen=True, slots=True)
class MarketState:
    """A `Market` config."""

    market_id: int
    base_mint: Pubkey
    quote_mint: Pubkey
    status: int
    batches: ReplayWindowState


@cache
def _accounts_coder() -> AccountsCoder:
    return AccountsCoder(load_idl())


def _decode(name: str, data: bytes) -> Any:
    coder = _accounts_coder()
    if data[:8] != coder.acc_name_to_discriminator[name]:
        raise ValueError(f"not an {name} account")
    return coder.decode(data)


def _window(raw: Any) -> ReplayWindowState:
    return ReplayWindowState(base=raw.base, bits=bytes(raw.bits))


def decode_exchange(data: bytes) -> ExchangeState:
    """Decode an `Exchange` account's data.

    Raises:
        ValueError: The data is not an `Exchange` account.
    """
    raw = _decode("Exchange", data)
    return ExchangeState(
        admin=raw.admin,
        operator=raw.operator,
        authority=raw.authority,
        status=raw.status,
        withdrawals=_window(raw.withdrawals),
    )


def decode_asset(data: bytes) -> AssetState:
    """Decode an `Asset` account's data.

    Raises:
        ValueError: The data is not an `Asset` account.
    """
    raw = _decode("Asset", data)
    return AssetState(
        mint=raw.mint,
        fee_vault=raw.fee_vault,
        cap_atoms=raw.cap_atoms,
        window_slots=raw.window_slots,
        used_atoms=raw.used_atoms,
        last_slot=raw.last_slot,
        decimals=raw.decimals,
    )


def decode_market(data: bytes) -> MarketState:
    """Decode a `Market` account's data.

    Raises:
        ValueError: The data is not a `Market` account.
    """
    raw = _decode("Market", data)
    return MarketState(
        market_id=raw.market_id,
        base_mint=raw.base_mint,
        quote_mint=raw.quote_mint,
        status=raw.status,
        batches=_window(raw.batches),
    )
