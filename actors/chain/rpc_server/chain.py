"""The embedded chain: one `LiteSVM` with a validator's slots, blockhashes and commitments.

LiteSVM executes transactions; this class adds what a validator adds around execution:
slots that advance, a blockhash per slot valid for `MAX_BLOCKHASH_AGE` slots, the
`processed`/`confirmed`/`finalized` frontiers, the signature history (a signature lands at
most once), preflight, and the fault switches. LiteSVM's own blockhash check and
transaction history are off: it accepts any blockhash and would run a duplicate again, so
both checks happen here, against this chain's own blockhashes and record.

A v0 transaction may load accounts from address lookup tables: LiteSVM runs the lookup
table program and resolves them; the chain keeps the SlotHashes sysvar that a new table's
recent slot is checked against, and lists the loaded accounts in `meta` (`loadedAddresses`,
balances) and in the record (see `lookups.py`).

Every landed transaction is written to the `ChainStore` with the accounts it wrote, so a
restart rebuilds the VM from the record (see `_restore`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from solders.account import Account
from solders.clock import Clock
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import RpcSimulateTransactionResult
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import (
    TransactionErrorFieldless,
    TransactionErrorType,
    UiTransactionStatusMeta,
)

from actors.chain.rpc_server import encode
from actors.chain.rpc_server.errors import PreflightFailure, RpcFault
from actors.chain.rpc_server.lookups import Loaded, SlotHashes, loaded
from actors.chain.rpc_server.store import ChainStore, Landed, TxRow

MAX_BLOCKHASH_AGE = 150
"""Slots a blockhash stays valid (a validator's MAX_PROCESSING_AGE)."""
CONFIRMED_DEPTH = 1
"""A transaction is `confirmed` once this many slots are built on its slot."""
FINALIZED_DEPTH = 32
"""... and `finalized` once this many are (a validator's 32-slot lockout)."""
LAMPORTS_PER_SIGNATURE = 5000
FAUCET_LAMPORTS = 500_000_000 * 10**9
"""What the faucet holds at genesis: 500 M SOL, far more than any test or demo airdrops."""
PRUNE_EVERY_SLOTS = 256
MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")


class Commitment(StrEnum):
    """How settled a read must be."""

    PROCESSED = "processed"
    CONFIRMED = "confirmed"
    FINALIZED = "finalized"


@dataclass
class Switches:
    """Fault switches set by tests through the `clob_*` methods."""

    drop_next: int = 0
    slots_paused: bool = False
    confirm_delay_slots: int = 0
    fail_next: int = 0
    fail_method: str | None = None
    fail_code: int = -32005
    fail_message: str = "Node is unhealthy"


@dataclass(frozen=True, slots=True)
class Program:
    """An extra SBF program to load at start."""

    program_id: Pubkey
    path: Path


@dataclass
class _Frontiers:
    slot: int = 0
    confirmed: int = 0
    finalized: int = 0
    hash_epoch: int = 0  # bumped by "expire every blockhash now"
    hash_epoch_slot: int = 0
    recent: dict[Hash, int] = field(default_factory=dict)


class Chain:
    """One embedded chain over a data directory."""

    def __init__(
        self,
        data_dir: Path,
        programs: Sequence[Program] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.store = ChainStore(data_dir / "chain.sqlite3")
        self.switches = Switches()
        self._clock = clock
        self._svm = _new_svm(programs)
        self.faucet = _faucet(data_dir / "faucet.json")
        self._genesis = self._genesis_hash()
        self._f = _Frontiers()
        self._slot_hashes = SlotHashes()
        self._restore()

    # -- slots and blockhashes ------------------------------------------------------------

    @property
    def slot(self) -> int:
        """The newest (processed) slot."""
        return self._f.slot

    @property
    def genesis_hash(self) -> Hash:
        """This chain's genesis hash (random, made on first start)."""
        return self._genesis

    def frontier(self, commitment: Commitment) -> int:
        """Return the newest slot at a commitment level."""
        if commitment is Commitment.PROCESSED:
            return self._f.slot
        return self._f.confirmed if commitment is Commitment.CONFIRMED else self._f.finalized

    def tick(self, slots: int = 1) -> None:
        """Advance the chain by `slots` slots: new blockhashes, frontiers, the VM's clock."""
        f = self._f
        for _ in range(slots):
            self._slot_hashes.push(f.slot, self._hash_of(f.slot))  # parents only, as a bank's
            f.slot += 1
            f.recent[self._hash_of(f.slot)] = f.slot
            delay = self.switches.confirm_delay_slots
            f.confirmed = max(f.confirmed, f.slot - CONFIRMED_DEPTH - delay)
            f.finalized = max(f.finalized, min(f.confirmed, f.slot - FINALIZED_DEPTH - delay))
        oldest = f.slot - MAX_BLOCKHASH_AGE
        f.recent = {h: s for h, s in f.recent.items() if s >= oldest}
        self._svm.set_clock(Clock(f.slot, 0, 0, 0, int(self._clock())))
        self._save_frontiers()
        if f.slot % PRUNE_EVERY_SLOTS < slots:
            self.store.prune(f.finalized)

    def latest_blockhash(self, commitment: Commitment) -> tuple[Hash, int]:
        """Return the blockhash of the commitment's slot and its last valid block height."""
        slot = max(self.frontier(commitment), self._f.hash_epoch_slot)
        return self._hash_of(slot), slot + MAX_BLOCKHASH_AGE

    def blockhash_valid(self, blockhash: Hash) -> bool:
        """Tell whether a blockhash is at most `MAX_BLOCKHASH_AGE` slots old."""
        return blockhash in self._f.recent

    def expire_blockhashes(self) -> None:
        """Make every blockhash handed out so far invalid (a fault switch)."""
        f = self._f
        f.hash_epoch += 1
        f.hash_epoch_slot = f.slot
        f.recent = {self._hash_of(f.slot): f.slot}
        self._save_frontiers()

    # -- transactions ---------------------------------------------------------------------

    def send(self, tx: VersionedTransaction, skip_preflight: bool) -> Signature:
        """Take a transaction as `sendTransaction` does; return its signature.

        With preflight, a transaction that would fail (a bad or expired blockhash, a
        duplicate, an execution error) is refused with `PreflightFailure`. Without it, such
        a transaction is accepted and, like a validator's, never lands, or lands with its
        error. A transaction taken by the drop switch is accepted and never executed.

        Raises:
            RpcFault: Malformed, badly signed, or refused by preflight.
        """
        signature = _check_signed(tx)
        refusal = self._refusal(tx, signature)
        if refusal is not None:
            if skip_preflight:
                return signature
            raise PreflightFailure(RpcSimulateTransactionResult(err=refusal, logs=[],
                                   units_consumed=0), encode.error_text(refusal))  # fmt: skip
        if not skip_preflight:
            self._preflight(tx)
        if self.switches.drop_next > 0:
            self.switches.drop_next -= 1
            return signature
        self._execute(tx)
        return signature

    def simulate(self, tx: VersionedTransaction, sig_verify: bool) -> RpcSimulateTransactionResult:
        """Run a transaction against the newest state without keeping its effects."""
        if sig_verify:
            _check_signed(tx)
        refusal = self._refusal(tx, tx.signatures[0])
        if refusal is not None and refusal != TransactionErrorFieldless.AlreadyProcessed:
            return RpcSimulateTransactionResult(err=refusal, logs=[], units_consumed=0)
        result = self._sync().simulate_transaction(tx)
        meta = result.meta()
        err = result.err() if isinstance(result, FailedTransactionMetadata) else None
        return RpcSimulateTransactionResult(
            err=err, logs=list(meta.logs()), units_consumed=meta.compute_units_consumed()
        )

    def transfer_from_faucet(self, to: Pubkey, lamports: int) -> Signature:
        """Airdrop: a system transfer from the faucet, executed at once."""
        from solders.system_program import TransferParams, transfer

        ix = transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=to,
                                     lamports=lamports))  # fmt: skip
        return self.run_as_faucet([ix], [])

    def run_as_faucet(self, instructions: list[Any], signers: list[Keypair]) -> Signature:
        """Sign with the faucet (and `signers`), execute now; raise if it fails.

        Raises:
            RpcFault: The transaction failed (the faucet's own call was wrong).
        """
        blockhash, _ = self.latest_blockhash(Commitment.PROCESSED)
        message = MessageV0.try_compile(self.faucet.pubkey(), instructions, [], blockhash)
        tx = VersionedTransaction(message, [self.faucet, *signers])
        if self.store.signature_seq(str(tx.signatures[0])) is not None:
            # The same request twice in one slot signs the same bytes: a memo of random
            # text makes the second a transaction of its own instead of a duplicate.
            nonce = Instruction(MEMO_PROGRAM_ID, os.urandom(8).hex().encode(), [])
            message = MessageV0.try_compile(
                self.faucet.pubkey(), [*instructions, nonce], [], blockhash
            )
            tx = VersionedTransaction(message, [self.faucet, *signers])
        self._preflight(tx)
        self._execute(tx)
        return tx.signatures[0]

    def landed(self, signature: str) -> TxRow | None:
        """Return the landed transaction with this signature, or None."""
        return self.store.transaction(signature)

    # -- accounts -------------------------------------------------------------------------

    def account(self, address: Pubkey, commitment: Commitment) -> Account | None:
        """Return an account as it was at the commitment's slot (None: no account)."""
        if commitment is not Commitment.PROCESSED:
            recorded, account = self.store.account_at(address, self.frontier(commitment))
            if recorded:
                return account
        # Never written by a transaction: the genesis state, the same at every level.
        return _live(self._svm.get_account(address))

    def rent_exempt_minimum(self, size: int) -> int:
        """Return the lamports an account of `size` bytes needs to be rent exempt."""
        return int(self._svm.minimum_balance_for_rent_exemption(size))

    # -- internals ------------------------------------------------------------------------

    def _refusal(
        self, tx: VersionedTransaction, signature: Signature
    ) -> TransactionErrorType | None:
        if self.store.signature_seq(str(signature)) is not None:
            return TransactionErrorFieldless.AlreadyProcessed
        if not self.blockhash_valid(tx.message.recent_blockhash):
            return TransactionErrorFieldless.BlockhashNotFound
        return None

    def _sync(self) -> LiteSVM:
        """Return the VM with its SlotHashes sysvar brought up to the newest slot (written
        before a transaction runs, not on every tick: only the lookup table program reads
        it)."""
        if self._slot_hashes.dirty:
            self._svm.set_slot_hashes(self._slot_hashes.take())
        return self._svm

    def _preflight(self, tx: VersionedTransaction) -> None:
        result = self._sync().simulate_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            meta, err = result.meta(), result.err()
            detail = RpcSimulateTransactionResult(
                err=err, logs=list(meta.logs()), units_consumed=meta.compute_units_consumed()
            )
            raise PreflightFailure(detail, encode.error_text(err))

    def _execute(self, tx: VersionedTransaction) -> None:
        svm = self._sync()
        tables = loaded(tx.message, svm.get_account)
        keys = [*tx.message.account_keys, *tables.writable, *tables.readonly]
        before = [_live(svm.get_account(key)) for key in keys]
        result = svm.send_transaction(tx)
        after = [_live(svm.get_account(key)) for key in keys]
        if isinstance(result, FailedTransactionMetadata) and _lamports(before[0]) == _lamports(
            after[0]
        ):
            return  # not even the fee was taken: a validator drops it, nothing lands
        self.store.record(self._landed(tx, result, tables, (keys, before, after)))

    def _landed(
        self,
        tx: VersionedTransaction,
        result: TransactionMetadata | FailedTransactionMetadata,
        tables: Loaded,
        accounts: tuple[list[Pubkey], list[Account | None], list[Account | None]],
    ) -> Landed:
        failed = isinstance(result, FailedTransactionMetadata)
        meta = result.meta() if isinstance(result, FailedTransactionMetadata) else result
        err = result.err() if isinstance(result, FailedTransactionMetadata) else None
        keys, before, after = accounts
        header, static = tx.message.header, len(tx.message.account_keys)
        ui_meta = UiTransactionStatusMeta(
            err, LAMPORTS_PER_SIGNATURE * header.num_required_signatures,
            [_lamports(a) for a in before], [_lamports(a) for a in after],
            log_messages=list(meta.logs()),
            pre_token_balances=encode.token_balances(before, self._svm.get_account),
            post_token_balances=encode.token_balances(after, self._svm.get_account),
            rewards=[],
            loaded_addresses=tables.ui() if isinstance(tx.message, MessageV0) else None,
            compute_units_consumed=meta.compute_units_consumed(),
        )  # fmt: skip
        writable = [encode.is_writable(header, i, static) for i in range(static)]
        writable += [True] * len(tables.writable) + [False] * len(tables.readonly)
        written = tuple(
            (key, account)
            for key, account, flag in zip(keys, after, writable, strict=True)
            if flag and not (account is not None and account.executable)
        )
        return Landed(
            str(tx.signatures[0]), self._f.slot, int(self._clock()), bytes(tx),
            ui_meta.to_json(), failed, tuple(keys), written,
        )  # fmt: skip

    def _hash_of(self, slot: int) -> Hash:
        seed = bytes(self._genesis) + self._f.hash_epoch.to_bytes(8, "little")
        return Hash(hashlib.sha256(seed + slot.to_bytes(8, "little")).digest())

    def _genesis_hash(self) -> Hash:
        stored = self.store.get_meta("genesis_hash")
        if stored is not None:
            return Hash.from_string(stored)
        genesis = Hash(os.urandom(32))
        faucet = Account(FAUCET_LAMPORTS, b"", Pubkey.default())
        self.store.put_accounts(0, [(self.faucet.pubkey(), faucet)])
        self.store.set_meta({"genesis_hash": str(genesis)})
        return genesis

    def _restore(self) -> None:
        """Rebuild the VM from the record: every account's latest version, then the slot."""
        for address, account in self.store.latest_accounts():
            self._svm.set_account(address, account or Account(0, b"", Pubkey.default()))
        f = self._f
        f.slot = int(self.store.get_meta("slot") or 0)
        f.confirmed = int(self.store.get_meta("confirmed") or 0)
        f.finalized = int(self.store.get_meta("finalized") or 0)
        f.hash_epoch = int(self.store.get_meta("hash_epoch") or 0)
        f.hash_epoch_slot = int(self.store.get_meta("hash_epoch_slot") or 0)
        first = max(f.hash_epoch_slot, f.slot - MAX_BLOCKHASH_AGE, 0)
        f.recent = {self._hash_of(s): s for s in range(first, f.slot + 1)}
        self._slot_hashes.fill(f.slot - 1, self._hash_of)
        self._svm.set_clock(Clock(f.slot, 0, 0, 0, int(self._clock())))

    def _save_frontiers(self) -> None:
        f = self._f
        self.store.set_meta({
            "slot": str(f.slot), "confirmed": str(f.confirmed), "finalized": str(f.finalized),
            "hash_epoch": str(f.hash_epoch), "hash_epoch_slot": str(f.hash_epoch_slot),
        })  # fmt: skip


def _new_svm(programs: Sequence[Program]) -> LiteSVM:
    svm = LiteSVM().with_blockhash_check(False).with_transaction_history(0)
    for program in programs:
        svm.add_program_from_file(program.program_id, program.path)
    return svm


def _faucet(path: Path) -> Keypair:
    from actors.chain.keys import load_or_create_keypair

    return load_or_create_keypair(path)


def _check_signed(tx: VersionedTransaction) -> Signature:
    try:
        tx.sanitize()
    except Exception as exc:  # solders raises its own SanitizeError types
        raise RpcFault(-32602, f"invalid transaction: {exc}") from None
    if not all(tx.verify_with_results()):
        raise RpcFault(-32003, "Transaction signature verification failure")
    return tx.signatures[0]


def _live(account: Account | None) -> Account | None:
    """Treat an empty system account (0 lamports, no data) as absent, as a validator does."""
    if account is None or (account.lamports == 0 and not account.data):
        return None
    return account


def _lamports(account: Account | None) -> int:
    return 0 if account is None else account.lamports
