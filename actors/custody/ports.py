"""The ports custody's loops are written against: the chain, the custody records and the
ledger. The real adapters are the JSON-RPC client (`actors/chain`), PostgreSQL
(`actors/custody/store.py`) and the ledger shards; the unit tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from actors.accounts import AccountId
from actors.custody.detect import DepositSeen, TxView, Vault
from actors.custody.monitor import Attempt, Landed


class ChainReader(Protocol):
    """What the deposit listener reads from the chain."""

    async def slot(self) -> int:
        """Return the current slot (at the `processed` commitment)."""
        ...

    async def signatures_since(self, address: str, until: str | None) -> list[str]:
        """Return the signatures touching an address after `until` (None: all), oldest
        first, at the `confirmed` commitment."""
        ...

    async def transaction(self, signature: str) -> TxView | None:
        """Return a transaction's view, or None when the node does not have it yet."""
        ...

    async def statuses(self, signatures: Sequence[str]) -> dict[str, Landed | None]:
        """Return each signature's status (None: not seen)."""
        ...


@dataclass(frozen=True, slots=True)
class PendingDeposit:
    """A deposit recorded and not credited yet."""

    deposit_id: int
    seen: DepositSeen


class DepositRecords(Protocol):
    """The custody records the deposit listener keeps."""

    async def vaults(self) -> list[Vault]:
        """Return every registered vault."""
        ...

    async def cursor(self, address: str) -> str | None:
        """Return the last signature of a vault read through (None: none yet)."""
        ...

    async def advance(
        self, address: str, signature: str, slot: int, seen: Sequence[DepositSeen]
    ) -> None:
        """Record the deposits a signature (of `slot`) made (each once, however often it is
        called) and move the vault's cursor to it, in one transaction."""
        ...

    async def pending(self) -> list[PendingDeposit]:
        """Return the deposits not credited yet, oldest first."""
        ...

    async def confirmations(self, deposit: PendingDeposit, confirmations: int) -> None:
        """Record how deep a pending deposit is."""
        ...

    async def credited(self, deposit: PendingDeposit) -> None:
        """Mark a deposit credited (after the ledger credited it)."""
        ...


class Ledger(Protocol):
    """The ledger's commands custody uses (the shard of the account answers)."""

    async def credit(
        self, account_id: AccountId, asset: str, amount_atoms: int, reference: str
    ) -> None:
        """Credit an account once per reference (a repeat changes nothing)."""
        ...


@dataclass(frozen=True, slots=True)
class WithdrawalJob:
    """A withdrawal the ledger has debited, to put on chain.

    Attributes:
        withdrawal_id: Its id (also the program's replay key).
        account_id: The account debited (its vault pays).
        asset: The asset symbol.
        amount_atoms: The amount sent.
        destination: The destination wallet (base58).
        waited_s: Seconds since the ledger debited it (the database's clock).
    """

    withdrawal_id: int
    account_id: AccountId
    asset: str
    amount_atoms: int
    destination: str
    waited_s: float = 0.0


VaultOf = tuple[AccountId, str]
"""A user's vault: (account id, asset symbol)."""


@dataclass(frozen=True, slots=True)
class SignedTx(Attempt):
    """An attempt with its signed bytes, kept so that it can be sent again byte for byte."""

    wire: bytes


class ChainWriter(ChainReader, Protocol):
    """What the withdrawal sender needs of the chain, on top of reading it."""

    async def block_height(self) -> int:
        """Return the current block height."""
        ...

    async def vault_balances(self, vaults: Sequence[VaultOf]) -> dict[VaultOf, int]:
        """Return what each vault holds on chain (`confirmed`; 0 for a vault that does not
        exist)."""
        ...

    async def build_withdrawal(self, job: WithdrawalJob) -> SignedTx:
        """Build and sign the program's withdraw for a job with a fresh blockhash."""
        ...

    async def send(self, tx: SignedTx) -> None:
        """Send a signed transaction (errors of the node are raised; landing is not waited)."""
        ...


class WithdrawalRecords(Protocol):
    """The custody records the withdrawal sender keeps."""

    async def in_flight(self) -> list[WithdrawalJob]:
        """Return the debited withdrawals not yet confirmed or failed, oldest first."""
        ...

    async def attempts(self, withdrawal_id: int) -> list[SignedTx]:
        """Return a withdrawal's attempts, oldest first."""
        ...

    async def add_attempt(self, withdrawal_id: int, tx: SignedTx) -> None:
        """Record an attempt (before it is sent, so a crash never loses its signature) and
        mark the withdrawal sent."""
        ...

    async def confirmed(self, withdrawal_id: int, signature: str, slot: int) -> None:
        """Mark a withdrawal confirmed by one of its attempts."""
        ...

    async def failed(self, withdrawal_id: int, reason: str) -> None:
        """Mark a withdrawal failed (after the ledger re-credited it)."""
        ...
