"""The exchange program's IDL and what it describes, pure: the program id, constants,
error names and account decoders (`actors.chain.program` re-exports them all).

The IDL (`programs/exchange/idl/exchange.json`) is read from the repository once. The
program id comes from settings (`CLOB_PROGRAM_ID`) where one is configured
(`program_id_from`); the default, `PROGRAM_ID`, is the IDL's `metadata.address` (the dev
keypair committed at `programs/exchange/program-keypair.json`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from anchorpy.coder.accounts import AccountsCoder
from anchorpy_core.idl import Idl
from solders.pubkey import Pubkey

IDL_PATH: Final = Path(__file__).resolve().parents[2] / "programs/exchange/idl/exchange.json"
PROGRAM_SO: Final = IDL_PATH.parents[1] / "target/deploy/exchange.so"
"""Where `make program` puts the built program (the embedded chain loads it from there)."""
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
