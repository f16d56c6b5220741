"""What the chain wrapper answers and raises: typed records and errors, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction_status import (
    InstructionErrorCustom,
    TransactionErrorInstructionError,
    TransactionErrorType,
)

from actors.infra.errors import ClobError

Commitment = Literal["processed", "confirmed", "finalized"]
LEVELS: dict[str, int] = {"processed": 0, "confirmed": 1, "finalized": 2}


class ChainError(ClobError):
    """A chain call failed."""


class ChainUnavailableError(ChainError):
    """No usable answer: a transport error, a timeout, an unhealthy or failing node."""


class ChainRpcError(ChainError):
    """The node answered with a JSON-RPC error (`kind` is solders' name for it)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind, self.message = kind, message


class TransactionRejectedError(ChainRpcError):
    """Preflight refused the transaction; it did not land.

    Attributes:
        err: The transaction error (solders' type), e.g. an instruction's custom error.
        logs: The simulation's log lines.
    """

    def __init__(self, message: str, err: TransactionErrorType | None, logs: list[str]) -> None:
        super().__init__("SendTransactionPreflightFailure", message)
        self.err, self.logs = err, logs

    @property
    def program_error(self) -> int | None:
        """The program's custom error code, if an instruction failed with one."""
        return program_error_code(self.err)


class BlockhashExpiredError(TransactionRejectedError):
    """The transaction's blockhash is unknown or more than 150 slots old."""


class AlreadyProcessedError(TransactionRejectedError):
    """A transaction with this signature already landed."""


class TransactionFailedError(ChainError):
    """The transaction landed with an error (its fee was paid, nothing else changed)."""

    def __init__(self, status: SignatureStatus) -> None:
        super().__init__(f"{status.signature} failed: {status.err}")
        self.status = status


class TransactionExpiredError(ChainError):
    """The blockhash's last valid block height passed and the transaction never landed."""


@dataclass(frozen=True, slots=True)
class Blockhash:
    """A blockhash and the last block height at which a transaction using it can land."""

    blockhash: Hash
    last_valid_block_height: int


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """Where a landed transaction stands.

    Attributes:
        confirmations: Confirmed blocks at or after its slot; None once finalized.
        err: Its error (solders' type), None if it succeeded.
        commitment: "processed", "confirmed" or "finalized".
    """

    signature: Signature
    slot: int
    confirmations: int | None
    err: TransactionErrorType | None
    commitment: Commitment

    def reached(self, commitment: Commitment) -> bool:
        """Tell whether it is at least at `commitment`."""
        return LEVELS[self.commitment] >= LEVELS[commitment]


@dataclass(frozen=True, slots=True)
class AddressSignature:
    """One transaction that touched an address."""

    signature: Signature
    slot: int
    err: TransactionErrorType | None
    block_time: int | None
    commitment: Commitment | None


@dataclass(frozen=True, slots=True)
class TokenBalanceChange:
    """A token account's balance before and after one transaction, in atoms."""

    account: Pubkey
    mint: Pubkey
    owner: Pubkey | None
    decimals: int
    pre_atoms: int
    post_atoms: int

    @property
    def delta_atoms(self) -> int:
        """What the transaction added (negative: took)."""
        return self.post_atoms - self.pre_atoms


@dataclass(frozen=True, slots=True)
class LandedTransaction:
    """A landed transaction as the product reads it."""

    signature: Signature
    slot: int
    block_time: int | None
    err: TransactionErrorType | None
    logs: tuple[str, ...]
    token_changes: tuple[TokenBalanceChange, ...]


@dataclass(frozen=True, slots=True)
class Simulation:
    """What a simulated transaction would do against the newest state (nothing is kept).

    Attributes:
        units_consumed: Compute units it used (None: the node did not say).
        err: Its error (solders' type), None if it would succeed.
        logs: Its log lines.
        program_error: The exchange program's name for its custom error (e.g.
            "InsufficientVaultBalance"), None for any other outcome. A custom code that
            another program raised and that happens to be in the exchange's IDL would be
            named too: the settle transactions call only the compute budget program, whose
            errors are not custom, and the exchange program.
    """

    units_consumed: int | None
    err: TransactionErrorType | None
    logs: list[str]
    program_error: str | None = None

    @property
    def ok(self) -> bool:
        """Tell whether it would succeed."""
        return self.err is None


def program_error_code(err: TransactionErrorType | None) -> int | None:
    """Return the custom program error code of an instruction error, else None."""
    if isinstance(err, TransactionErrorInstructionError) and isinstance(
        err.err, InstructionErrorCustom
    ):
        return int(err.err.code)
    return None
