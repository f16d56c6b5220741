"""Encodings the embedded chain shares with a validator: token balances, error texts, UI forms."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import based58
from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.message import MessageHeader, MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_status import (
    InstructionErrorCustom,
    TransactionErrorFieldless,
    TransactionErrorInstructionError,
    TransactionErrorType,
    TransactionStatus,
    UiAddressTableLookup,
    UiCompiledInstruction,
    UiRawMessage,
    UiTransaction,
    UiTransactionTokenBalance,
)
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
TOKEN_ACCOUNT_LEN = 165  # bytes of an SPL token account (Token-2022 may append extensions)
MINT_LEN = 82
_STATE_OFFSET = 108  # AccountState: 0 uninitialized, 1 initialized, 2 frozen
_DECIMALS_OFFSET = 44

_FIELDLESS_TEXT = {
    # Keyed by name: solders' error enums are not hashable.
    "BlockhashNotFound": "Blockhash not found",
    "AlreadyProcessed": "This transaction has already been processed",
    "AccountNotFound": "Attempt to debit an account but found no record of a prior credit.",
    "InsufficientFundsForFee": "Insufficient funds for fee",
    "SignatureFailure": "Transaction did not pass signature verification",
}


def is_writable(header: MessageHeader, index: int, key_count: int) -> bool:
    """Tell whether the static account key at `index` is writable (the header's rule)."""
    signed = header.num_required_signatures
    if index < signed:
        return index < signed - header.num_readonly_signed_accounts
    return index < key_count - header.num_readonly_unsigned_accounts


def token_account(account: Account | None) -> tuple[Pubkey, Pubkey, int] | None:
    """Return `(mint, owner, amount_atoms)` of an initialized SPL token account, else None."""
    if account is None or account.owner not in TOKEN_PROGRAMS:
        return None
    data = bytes(account.data)
    if len(data) < TOKEN_ACCOUNT_LEN or data[_STATE_OFFSET] == 0:
        return None
    mint, owner = Pubkey.from_bytes(data[0:32]), Pubkey.from_bytes(data[32:64])
    return mint, owner, int.from_bytes(data[64:72], "little")


def mint_decimals(account: Account | None) -> int | None:
    """Return the decimals of an SPL mint account, else None."""
    if account is None or account.owner not in TOKEN_PROGRAMS:
        return None
    data = bytes(account.data)
    return data[_DECIMALS_OFFSET] if len(data) >= MINT_LEN else None


def ui_amount(amount: int, decimals: int) -> UiTokenAmount:
    """Return a validator's `uiTokenAmount` of an integer amount."""
    whole, frac = divmod(amount, 10**decimals) if decimals else (amount, 0)
    text = str(whole) if not frac else f"{whole}.{frac:0{decimals}d}".rstrip("0")
    # uiAmount is a float on the wire (a validator's own lossy field); products read `amount`.
    return UiTokenAmount(float(text), decimals, str(amount), text)


def token_balances(
    accounts: list[Account | None], get: Callable[[Pubkey], Account | None]
) -> list[UiTransactionTokenBalance]:
    """Return the token balance entries of a transaction's accounts (`get` reads a mint)."""
    out = []
    for index, account in enumerate(accounts):
        parsed = token_account(account)
        if parsed is None:
            continue
        entry = token_balance(index, account, mint_decimals(get(parsed[0])))
        if entry is not None:
            out.append(entry)
    return out


def token_balance(
    index: int, account: Account | None, decimals: int | None
) -> UiTransactionTokenBalance | None:
    """Return the `preTokenBalances`/`postTokenBalances` entry of one account key, if any."""
    parsed = token_account(account)
    if parsed is None or decimals is None or account is None:
        return None
    mint, owner, amount = parsed
    return UiTransactionTokenBalance(index, mint, ui_amount(amount, decimals), owner, account.owner)


def error_text(err: TransactionErrorType) -> str:
    """Return a validator's text for a transaction error (`Transaction simulation failed: ...`)."""
    if isinstance(err, TransactionErrorFieldless):
        name = str(err).rsplit(".", 1)[-1]
        return _FIELDLESS_TEXT.get(name, name)
    if isinstance(err, TransactionErrorInstructionError):
        index, detail = err.index, err.err
        if isinstance(detail, InstructionErrorCustom):
            return f"Error processing Instruction {index}: custom program error: {detail.code:#x}"
        return f"Error processing Instruction {index}: {str(detail).rsplit('.', 1)[-1]}"
    return str(err)


def error_json(err: TransactionErrorType | None) -> Any:
    """Return the JSON form of a transaction error, as a validator writes it in `err`."""
    return json.loads(TransactionStatus(0, None, None, err, None).to_json())["err"]


def ui_transaction(tx: VersionedTransaction) -> UiTransaction:
    """Return the `json` encoding of a transaction (a raw message: keys, instructions)."""
    message = tx.message
    instructions = [
        UiCompiledInstruction(ix.program_id_index, bytes(ix.accounts), _b58(bytes(ix.data)))
        for ix in message.instructions
    ]
    raw = UiRawMessage(
        message.header, list(message.account_keys), message.recent_blockhash, instructions,
        [UiAddressTableLookup(t.account_key, bytes(t.writable_indexes), bytes(t.readonly_indexes))
         for t in message.address_table_lookups] if isinstance(message, MessageV0) else None,
    )  # fmt: skip
    return UiTransaction(list(tx.signatures), raw)


def _b58(data: bytes) -> str:
    return str(based58.b58encode(data).decode())
