"""The exchange program in the Solana VM (`solders.litesvm`), for tests and the CU bench.

`ProgramChain` loads the built `.so` (the Makefile's `program` target) into an
in-process LiteSVM with the SPL Token program, creates mints and token accounts with
real SPL instructions, and sends transactions built by `actors.chain.program`. Every
send gets a fresh blockhash, so resending the same instruction is a new transaction
(the program's replay windows, not the VM's duplicate-signature check, refuse it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import spl.token.instructions as spl
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import Message
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, create_account
from solders.transaction import Transaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from actors.accounts import AccountId
from actors.chain import program as prog
from actors.chain.program_idl import PROGRAM_SO

REPO_ROOT = Path(__file__).resolve().parents[2]
MINT_LEN = 82
TOKEN_ACCOUNT_LEN = 165
SOL = 1_000_000_000  # lamports


def program_elf() -> bytes:
    """Return the built program; skip when it is missing outside CI, fail under CI."""
    if not PROGRAM_SO.is_file():
        reason = f"{PROGRAM_SO.relative_to(REPO_ROOT)} is missing: run `make program`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PROGRAM_SO.read_bytes()


class ProgramError(AssertionError):
    """A transaction expected to succeed failed."""


@dataclass(frozen=True, slots=True)
class Sent:
    """A successful transaction: its compute units and logs."""

    compute_units: int
    logs: list[str]


class ProgramChain:
    """A LiteSVM with the exchange program, a payer, an admin and an operator."""

    def __init__(self, elf: bytes, program_id: Pubkey = prog.PROGRAM_ID) -> None:
        self.svm = LiteSVM()
        self.program_id = program_id
        self.svm.add_program(program_id, elf)
        self.payer = self.funded()
        self.admin = self.funded()
        self.operator = self.funded()

    def funded(self, lamports: int = 100 * SOL) -> Keypair:
        """Return a new keypair holding `lamports`."""
        key = Keypair()
        self.svm.airdrop(key.pubkey(), lamports)
        return key

    def send(
        self, ixs: Instruction | Sequence[Instruction], *signers: Keypair
    ) -> TransactionMetadata | FailedTransactionMetadata:
        """Send one transaction paid by the payer, on a fresh blockhash."""
        self.svm.expire_blockhash()
        ixs = [ixs] if isinstance(ixs, Instruction) else list(ixs)
        message = Message.new_with_blockhash(ixs, self.payer.pubkey(), self.svm.latest_blockhash())
        keys = {k.pubkey(): k for k in (self.payer, *signers)}
        tx = Transaction(list(keys.values()), message, self.svm.latest_blockhash())
        return self.svm.send_transaction(tx)

    def ok(self, ixs: Instruction | Sequence[Instruction], *signers: Keypair) -> Sent:
        """Send and require success."""
        result = self.send(ixs, *signers)
        if isinstance(result, FailedTransactionMetadata):
            raise ProgramError(f"{result.err()}\n" + "\n".join(result.meta().logs()))
        return Sent(result.compute_units_consumed(), list(result.logs()))

    def error(self, ixs: Instruction | Sequence[Instruction], *signers: Keypair) -> str:
        """Send, require a failure with one of the program's codes, and return its name."""
        result = self.send(ixs, *signers)
        assert isinstance(result, FailedTransactionMetadata), "the transaction succeeded"
        err = result.err()
        assert isinstance(err, TransactionErrorInstructionError), err
        assert isinstance(err.err, InstructionErrorCustom), err
        name = prog.error_name(err.err.code)
        assert name is not None, f"custom error {err.err.code} is not in the IDL"
        return name

    # SPL Token, through its real instructions.

    def create_mint(self, decimals: int = 6, *, freezable: bool = False) -> Pubkey:
        """Create an SPL mint whose mint (and, if `freezable`, freeze) authority is the
        payer."""
        mint = Keypair()
        rent = self.svm.minimum_balance_for_rent_exemption(MINT_LEN)
        self.ok(
            [
                self._create(mint.pubkey(), rent, MINT_LEN),
                spl.initialize_mint(
                    spl.InitializeMintParams(
                        decimals=decimals,
                        program_id=prog.TOKEN_PROGRAM_ID,
                        mint=mint.pubkey(),
                        mint_authority=self.payer.pubkey(),
                        freeze_authority=self.payer.pubkey() if freezable else None,
                    )
                ),
            ],
            mint,
        )
        return mint.pubkey()

    def freeze(self, mint: Pubkey, token_account: Pubkey) -> None:
        """Freeze a token account of a freezable mint."""
        params = spl.FreezeAccountParams(
            program_id=prog.TOKEN_PROGRAM_ID,
            account=token_account,
            mint=mint,
            authority=self.payer.pubkey(),
        )
        self.ok(spl.freeze_account(params))

    def token_account(self, mint: Pubkey, owner: Pubkey) -> Pubkey:
        """Create a plain SPL token account of `mint` owned by `owner`."""
        account = Keypair()
        rent = self.svm.minimum_balance_for_rent_exemption(TOKEN_ACCOUNT_LEN)
        init = spl.initialize_account(
            spl.InitializeAccountParams(
                program_id=prog.TOKEN_PROGRAM_ID,
                account=account.pubkey(),
                mint=mint,
                owner=owner,
            )
        )
        self.ok([self._create(account.pubkey(), rent, TOKEN_ACCOUNT_LEN), init], account)
        return account.pubkey()

    def mint_to(self, mint: Pubkey, destination: Pubkey, amount: int) -> None:
        """Mint `amount` atoms to a token account (a deposit, for a vault)."""
        params = spl.MintToParams(
            program_id=prog.TOKEN_PROGRAM_ID,
            mint=mint,
            dest=destination,
            mint_authority=self.payer.pubkey(),
            amount=amount,
        )
        self.ok(spl.mint_to(params))

    def transfer(self, source: Pubkey, owner: Keypair, destination: Pubkey, amount: int) -> None:
        """Move `amount` atoms between token accounts, signed by `owner`."""
        params = spl.TransferParams(
            program_id=prog.TOKEN_PROGRAM_ID,
            source=source,
            dest=destination,
            owner=owner.pubkey(),
            amount=amount,
        )
        self.ok(spl.transfer(params), owner)

    def balance(self, token_account: Pubkey) -> int:
        """Return a token account's amount, in atoms."""
        account = self.svm.get_account(token_account)
        assert account is not None, f"{token_account} does not exist"
        return int.from_bytes(bytes(account.data)[64:72], "little")

    def data(self, address: Pubkey) -> bytes:
        """Return an account's data."""
        account = self.svm.get_account(address)
        assert account is not None, f"{address} does not exist"
        return bytes(account.data)

    def exists(self, address: Pubkey) -> bool:
        """Return whether an account holds lamports."""
        account = self.svm.get_account(address)
        return account is not None and account.lamports > 0

    def warp(self, slots: int) -> None:
        """Advance the clock by `slots`."""
        self.svm.warp_to_slot(self.svm.get_clock().slot + slots)

    def _create(self, address: Pubkey, lamports: int, space: int) -> Instruction:
        return create_account(
            CreateAccountParams(
                from_pubkey=self.payer.pubkey(),
                to_pubkey=address,
                lamports=lamports,
                space=space,
                owner=prog.TOKEN_PROGRAM_ID,
            )
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """An initialised exchange: two assets and a market over them."""

    chain: ProgramChain
    base: Pubkey
    quote: Pubkey
    market_id: int


def setup_exchange(
    chain: ProgramChain, cap_atoms: int = 1_000_000, window_slots: int = 100, market_id: int = 7
) -> Exchange:
    """Initialise the exchange, add two assets with the same cap, and a market."""
    pid, admin, payer = chain.program_id, chain.admin, chain.payer.pubkey()
    chain.ok(prog.ix_initialize(pid, payer, admin.pubkey(), chain.operator.pubkey()), admin)
    base, quote = chain.create_mint(9), chain.create_mint(6)
    for mint in (base, quote):
        ix = prog.ix_add_asset(
            pid,
            admin=admin.pubkey(),
            payer=payer,
            mint=mint,
            cap_atoms=cap_atoms,
            window_slots=window_slots,
        )
        chain.ok(ix, admin)
    ix = prog.ix_add_market(
        pid,
        admin=admin.pubkey(),
        payer=payer,
        market_id=market_id,
        base_mint=base,
        quote_mint=quote,
    )
    chain.ok(ix, admin)
    return Exchange(chain, base, quote, market_id)


def funded_vault(ex: Exchange, mint: Pubkey, account_id: int, amount: int) -> Pubkey:
    """Register `account_id`'s vault for `mint` and deposit `amount` atoms into it."""
    chain, account = ex.chain, AccountId(account_id)
    operator = chain.operator.pubkey()
    ix = prog.ix_register_vault(chain.program_id, operator=operator, mint=mint, account_id=account)
    chain.ok(ix, chain.operator)
    vault = prog.vault_pda(chain.program_id, mint, account)
    if amount:
        chain.mint_to(mint, vault, amount)
    return vault


def with_account(ix: Instruction, index: int, meta: AccountMeta) -> Instruction:
    """Return `ix` with its account at `index` replaced (wrong accounts on purpose)."""
    accounts = list(ix.accounts)
    accounts[index] = meta
    return Instruction(ix.program_id, ix.data, accounts)


def account_index(ix_name: str, account: str) -> int:
    """Return the position of an IDL account (camelCase) in an instruction."""
    idl_ix = next(i for i in prog.load_idl().instructions if i.name == ix_name)
    return [a.name for a in idl_ix.accounts].index(account)  # type: ignore[union-attr]


def swap(ix: Instruction, ix_name: str, account: str, pubkey: Pubkey) -> Instruction:
    """Return `ix` with the IDL account `account` replaced by `pubkey` (same flags)."""
    index = account_index(ix_name, account)
    old = ix.accounts[index]
    return with_account(ix, index, AccountMeta(pubkey, old.is_signer, old.is_writable))


def unsigned(ix: Instruction, ix_name: str, account: str) -> Instruction:
    """Return `ix` with the IDL account `account` no longer a signer."""
    index = account_index(ix_name, account)
    old = ix.accounts[index]
    return with_account(ix, index, AccountMeta(old.pubkey, False, old.is_writable))
