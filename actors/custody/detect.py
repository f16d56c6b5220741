"""Deposits seen in a transaction: what the deposit listener credits, decided purely.

A deposit is a plain SPL transfer into a user's vault (its deposit address). The listener
reads, for each new signature of a vault, the transaction's token balances before and after;
a vault whose balance grew in a successful transaction that did not invoke the exchange
program received a deposit of the difference. Transactions of the program itself (withdraw,
settle) move vault balances too, but they are the exchange's own moves, already in the
ledger: they are never deposits. Only the operator can sign the program's instructions, so a
user cannot dress a deposit up as one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actors.accounts import AccountId
from actors.custody.references import deposit_reference


@dataclass(frozen=True, slots=True)
class TokenBalance:
    """A token account's balance in a transaction's metadata.

    Attributes:
        address: The token account (base58).
        mint: Its mint (base58).
        amount_atoms: Its balance, atoms.
    """

    address: str
    mint: str
    amount_atoms: int


@dataclass(frozen=True, slots=True)
class TxView:
    """What the listener needs of a confirmed transaction.

    Attributes:
        signature: The transaction's signature (base58).
        slot: The slot it landed in.
        failed: True when it failed (a failed transaction moves no tokens).
        programs: The program ids its instructions invoke (top level and inner).
        pre: Token balances before, by token account address.
        post: Token balances after, by token account address.
    """

    signature: str
    slot: int
    failed: bool
    programs: frozenset[str]
    pre: Mapping[str, TokenBalance]
    post: Mapping[str, TokenBalance]


@dataclass(frozen=True, slots=True)
class Vault:
    """A user's vault: a deposit address and whose it is.

    Attributes:
        address: The vault token account (base58).
        account_id: The account it credits.
        asset: The asset symbol of its mint.
        mint: The mint (base58).
    """

    address: str
    account_id: AccountId
    asset: str
    mint: str


@dataclass(frozen=True, slots=True)
class DepositSeen:
    """A deposit found in a transaction, not yet credited.

    Attributes:
        signature: The transaction's signature.
        slot: Its slot.
        vault: The vault that received it.
        amount_atoms: How much it received (> 0).
    """

    signature: str
    slot: int
    vault: Vault
    amount_atoms: int

    @property
    def reference(self) -> str:
        """Return the ledger's credit reference: one credit per transaction and vault."""
        return deposit_reference(self.signature, self.vault.address)


def deposits_in(tx: TxView, vaults: Mapping[str, Vault], program_id: str) -> list[DepositSeen]:
    """Return the deposits a transaction made into the given vaults, in address order.

    Args:
        tx: The transaction.
        vaults: The known vaults by address (those not listed are ignored).
        program_id: The exchange program's id: its transactions are not deposits.
    """
    if tx.failed or program_id in tx.programs:
        return []
    found = []
    for address in sorted(tx.post):
        vault = vaults.get(address)
        after = tx.post[address]
        if vault is None or after.mint != vault.mint:
            continue
        before = tx.pre.get(address)
        grown = after.amount_atoms - (before.amount_atoms if before is not None else 0)
        if grown > 0:
            found.append(DepositSeen(tx.signature, tx.slot, vault, grown))
    return found


def confirmations(tx_slot: int, current_slot: int) -> int:
    """Return how many slots deep a transaction is (0 in its own slot)."""
    return max(0, current_slot - tx_slot)
