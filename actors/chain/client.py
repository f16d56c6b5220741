"""The product's one way to a Solana chain: a thin async wrapper over `solana`'s AsyncClient.

It speaks JSON-RPC only, so it works the same against a real cluster and the embedded
chain. Every failure becomes a typed `ChainError`: `ChainUnavailableError` (no answer, a
timeout, an unhealthy node: try again later), `TransactionRejectedError` and its kinds
(`BlockhashExpiredError`, `AlreadyProcessedError`: preflight refused, nothing landed),
`TransactionFailedError` (landed with an error), `TransactionExpiredError` (its blockhash expired
and it never landed), `ChainRpcError` (any other error answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Commitment as SolanaCommitment
from solana.rpc.core import RPCException, RPCNoResultException
from solana.rpc.types import TxOpts
from solders.account_decoder import UiTokenAmount
from solders.pubkey import Pubkey
from solders.rpc.errors import (
    InternalErrorMessage,
    NodeUnhealthyMessage,
    SendTransactionPreflightFailureMessage,
)
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_status import (
    TransactionErrorFieldless,
    UiTransactionTokenBalance,
)

from actors.chain.program_idl import error_name
from actors.chain.records import (
    AddressSignature,
    AlreadyProcessedError,
    Blockhash,
    BlockhashExpiredError,
    ChainError,
    ChainRpcError,
    ChainUnavailableError,
    Commitment,
    LandedTransaction,
    SignatureStatus,
    Simulation,
    TokenBalanceChange,
    TransactionExpiredError,
    TransactionFailedError,
    TransactionRejectedError,
    program_error_code,
)

__all__ = [
    "AddressSignature", "AlreadyProcessedError", "Blockhash", "BlockhashExpiredError",
    "ChainClient", "ChainError", "ChainRpcError", "ChainUnavailableError", "Commitment",
    "LandedTransaction", "SignatureStatus", "Simulation", "TokenBalanceChange",
    "TransactionExpiredError", "TransactionFailedError", "TransactionRejectedError",
    "program_error_code",
]  # fmt: skip

MAX_STATUSES_PER_CALL = 256
MAX_ACCOUNTS_PER_CALL = 100
MAX_SIGNATURES_PER_PAGE = 1000
TOKEN_ACCOUNT_LEN = 165


class ChainClient:
    """Typed calls to one JSON-RPC endpoint.

    Args:
        url: The JSON-RPC URL (`SOLANA_RPC_URL`, or the embedded chain's).
        commitment: The level reads use unless a call names another.
        timeout_s: Bound on every call, the HTTP exchange included.
    """

    def __init__(self, url: str, commitment: Commitment = "confirmed", timeout_s: float = 10.0):
        self.url, self.commitment, self.timeout_s = url, commitment, timeout_s
        self._rpc = AsyncClient(url, SolanaCommitment(commitment), timeout=timeout_s)

    async def __aenter__(self) -> ChainClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._rpc.close()

    async def is_healthy(self) -> bool:
        """Tell whether the node answers `GET /health` with "ok" (False on any failure)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return bool(await self._rpc.is_connected())
        except (TimeoutError, SolanaRpcException, httpx.HTTPError, OSError):
            return False

    async def slot(self, commitment: Commitment | None = None) -> int:
        """Return the newest slot at `commitment`."""
        resp = await self._call(self._rpc.get_slot(self._c(commitment)))
        return int(resp.value)

    async def block_height(self, commitment: Commitment | None = None) -> int:
        """Return the block height at `commitment`."""
        resp = await self._call(self._rpc.get_block_height(self._c(commitment)))
        return int(resp.value)

    async def latest_blockhash(self, commitment: Commitment | None = None) -> Blockhash:
        """Return a blockhash to sign with, and its last valid block height."""
        resp = await self._call(self._rpc.get_latest_blockhash(self._c(commitment)))
        return Blockhash(resp.value.blockhash, int(resp.value.last_valid_block_height))

    async def send_transaction(
        self, tx: VersionedTransaction | Transaction, skip_preflight: bool = False
    ) -> Signature:
        """Send a signed transaction; return its signature without waiting for it.

        Raises:
            TransactionRejectedError: Preflight refused it (see the subclasses).
            ChainUnavailableError: No answer; it may or may not have been taken (look up its
                signature before sending it again: resending the same bytes is safe).
        """
        opts = TxOpts(skip_confirmation=True, skip_preflight=skip_preflight,
                      preflight_commitment=SolanaCommitment("processed"))  # fmt: skip
        resp = await self._call(self._rpc.send_raw_transaction(bytes(tx), opts))
        return Signature.from_string(str(resp.value))

    async def simulate(self, tx: VersionedTransaction) -> Simulation:
        """Run a transaction against the newest (processed) state and keep nothing.

        Signatures are not checked and the blockhash is not replaced, so a transaction
        simulates as it would land (an expired blockhash is `err` BlockhashNotFound). A
        failed execution is an answer, not an exception.

        Raises:
            ChainUnavailableError: No answer (see `ChainError` for the others).
        """
        call = self._rpc.simulate_transaction(tx, False, SolanaCommitment("processed"))
        value = (await self._call(call)).value
        code = program_error_code(value.err)
        return Simulation(
            None if value.units_consumed is None else int(value.units_consumed),
            value.err, list(value.logs or []), None if code is None else error_name(code),
        )  # fmt: skip

    async def signature_statuses(
        self, signatures: Sequence[Signature]
    ) -> list[SignatureStatus | None]:
        """Return each signature's status (None: not landed, or unknown), in order."""
        out: list[SignatureStatus | None] = []
        for start in range(0, len(signatures), MAX_STATUSES_PER_CALL):
            chunk = list(signatures[start : start + MAX_STATUSES_PER_CALL])
            resp = await self._call(self._rpc.get_signature_statuses(chunk, True))
            out += [_status(sig, value) for sig, value in zip(chunk, resp.value, strict=True)]
        return out

    async def wait_for(
        self,
        signature: Signature,
        last_valid_block_height: int,
        commitment: Commitment | None = None,
        poll_s: float = 0.2,
    ) -> SignatureStatus:
        """Wait until a sent transaction reaches `commitment`, or can no longer land.

        Raises:
            TransactionFailedError: It landed with an error.
            TransactionExpiredError: Its blockhash expired and it never landed.
        """
        wanted = commitment or self.commitment
        while True:
            height = await self.block_height("processed")
            (status,) = await self.signature_statuses([signature])
            if status is not None and status.err is not None:
                raise TransactionFailedError(status)
            if status is not None and status.reached(wanted):
                return status
            if status is None and height > last_valid_block_height:
                raise TransactionExpiredError(f"{signature}: blockhash expired at block height "
                                         f"{last_valid_block_height}, now {height}")  # fmt: skip
            await asyncio.sleep(poll_s)

    async def signatures_since(
        self,
        address: Pubkey,
        until: Signature | None = None,
        commitment: Commitment | None = None,
        page_size: int = MAX_SIGNATURES_PER_PAGE,
    ) -> list[AddressSignature]:
        """Return the address's transactions after `until` (all if None), oldest first.

        History is served from `confirmed` up: `processed` is read as `confirmed`.
        """
        level = self._c(commitment, at_least_confirmed=True)
        found: list[AddressSignature] = []
        before: Signature | None = None
        while True:
            call = self._rpc.get_signatures_for_address(address, before, until, page_size, level)
            page = (await self._call(call)).value
            found += [_address_signature(item) for item in page]
            if len(page) < page_size:
                return found[::-1]
            before = page[-1].signature

    async def transaction(
        self, signature: Signature, commitment: Commitment | None = None
    ) -> LandedTransaction | None:
        """Return a landed transaction with its token balance changes, or None."""
        call = self._rpc.get_transaction(
            signature, "base64", self._c(commitment, at_least_confirmed=True), 0
        )
        value = (await self._call(call)).value
        if value is None:
            return None
        tx, meta = value.transaction.transaction, value.transaction.meta
        if not isinstance(tx, VersionedTransaction) or meta is None:
            raise ChainRpcError("UnexpectedAnswer", f"{signature}: no transaction or meta")
        loaded = meta.loaded_addresses  # a v0 transaction's addresses from lookup tables
        keys = [*tx.message.account_keys, *(loaded.writable if loaded else []),
                *(loaded.readonly if loaded else [])]  # fmt: skip
        changes = _token_changes(keys, meta.pre_token_balances, meta.post_token_balances)
        return LandedTransaction(signature, value.slot, value.block_time, meta.err,
                                 tuple(meta.log_messages or ()), changes)  # fmt: skip

    async def token_balance_changes(
        self, signature: Signature, address: Pubkey | None = None,
        commitment: Commitment | None = None,
    ) -> list[TokenBalanceChange]:  # fmt: skip
        """Return a transaction's token balance changes (of one account, if given).

        Raises:
            ChainRpcError: No such transaction at that commitment (kind "NotFound").
        """
        landed = await self.transaction(signature, commitment)
        if landed is None:
            raise ChainRpcError("NotFound", f"{signature} is not at that commitment")
        return [c for c in landed.token_changes if address is None or c.account == address]

    async def token_balance(
        self, account: Pubkey, commitment: Commitment | None = None
    ) -> int | None:
        """Return a token account's balance in atoms; None if it is not a token account."""
        balances = await self.token_balances([account], commitment)
        return balances[account]

    async def token_balances(
        self, accounts: Sequence[Pubkey], commitment: Commitment | None = None
    ) -> dict[Pubkey, int | None]:
        """Return many token accounts' balances in atoms (None: no such token account)."""
        out: dict[Pubkey, int | None] = {}
        for start in range(0, len(accounts), MAX_ACCOUNTS_PER_CALL):
            chunk = list(accounts[start : start + MAX_ACCOUNTS_PER_CALL])
            call = self._rpc.get_multiple_accounts(chunk, self._c(commitment), "base64")
            values = (await self._call(call)).value
            for key, account in zip(chunk, values, strict=True):
                out[key] = _token_amount(None if account is None else bytes(account.data))
        return out

    async def balance(self, address: Pubkey, commitment: Commitment | None = None) -> int:
        """Return an address's lamports."""
        resp = await self._call(self._rpc.get_balance(address, self._c(commitment)))
        return int(resp.value)

    async def account_data(
        self, address: Pubkey, commitment: Commitment | None = None
    ) -> bytes | None:
        """Return an account's data, or None if there is no account."""
        call = self._rpc.get_account_info(address, self._c(commitment), "base64")
        value = (await self._call(call)).value
        return None if value is None else bytes(value.data)

    async def minimum_balance_for_rent_exemption(self, size: int) -> int:
        """Return the lamports an account of `size` bytes needs to be rent exempt."""
        resp = await self._call(self._rpc.get_minimum_balance_for_rent_exemption(size))
        return int(resp.value)

    async def request_airdrop(self, address: Pubkey, lamports: int) -> Signature:
        """Ask the cluster's faucet for lamports (embedded chain, devnet, testnet)."""
        resp = await self._call(self._rpc.request_airdrop(address, lamports))
        return Signature.from_string(str(resp.value))

    def _c(
        self, commitment: Commitment | None, at_least_confirmed: bool = False
    ) -> SolanaCommitment:
        level = commitment or self.commitment
        if at_least_confirmed and level == "processed":
            level = "confirmed"  # history is served from `confirmed` up
        return SolanaCommitment(level)

    async def _call(self, pending: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await pending
        except TimeoutError:
            raise ChainUnavailableError(
                f"{self.url}: no answer within {self.timeout_s} s"
            ) from None
        except RPCException as exc:
            raise _rpc_error(exc.args[0] if exc.args else exc) from None
        except (SolanaRpcException, httpx.HTTPError, OSError) as exc:
            raise ChainUnavailableError(f"{self.url}: {exc}") from None
        except RPCNoResultException as exc:
            raise ChainRpcError("NoResult", str(exc)) from None
        except BaseException as exc:
            # solders' parser panics (a BaseException) on an error answer it cannot read.
            if type(exc).__name__ != "PanicException":
                raise
            raise ChainRpcError("Unparseable", str(exc)) from None
        if not hasattr(resp, "value"):  # an error answer solders could not classify
            raise ChainRpcError("Unclassified", repr(resp))
        return resp


def _rpc_error(error: Any) -> ChainError:
    if isinstance(error, SendTransactionPreflightFailureMessage):
        err, logs = error.data.err, list(error.data.logs or [])
        if err == TransactionErrorFieldless.BlockhashNotFound:
            return BlockhashExpiredError(error.message, err, logs)
        if err == TransactionErrorFieldless.AlreadyProcessed:
            return AlreadyProcessedError(error.message, err, logs)
        return TransactionRejectedError(error.message, err, logs)
    if isinstance(error, NodeUnhealthyMessage | InternalErrorMessage):
        return ChainUnavailableError(f"{type(error).__name__}: {error.message}")
    kind = type(error).__name__.removesuffix("Message")
    return ChainRpcError(kind, str(getattr(error, "message", error)))


def _status(signature: Signature, value: Any) -> SignatureStatus | None:
    if value is None:
        return None
    level = str(value.confirmation_status or "processed").rsplit(".", 1)[-1].lower()
    commitment: Commitment = "finalized" if level == "finalized" else (
        "confirmed" if level == "confirmed" else "processed"
    )  # fmt: skip
    return SignatureStatus(signature, value.slot, value.confirmations, value.err, commitment)


def _address_signature(item: Any) -> AddressSignature:
    level = item.confirmation_status
    text = None if level is None else str(level).rsplit(".", 1)[-1].lower()
    commitment: Commitment | None = (
        "finalized" if text == "finalized" else "confirmed" if text == "confirmed"
        else "processed" if text == "processed" else None
    )  # fmt: skip
    return AddressSignature(item.signature, item.slot, item.err, item.block_time, commitment)


def _token_changes(
    keys: list[Pubkey],
    pre: list[UiTransactionTokenBalance] | None,
    post: list[UiTransactionTokenBalance] | None,
) -> tuple[TokenBalanceChange, ...]:
    before = {b.account_index: b for b in pre or []}
    after = {b.account_index: b for b in post or []}
    changes = []
    for index in sorted(before.keys() | after.keys()):
        entry = after.get(index) or before[index]
        changes.append(TokenBalanceChange(
            keys[index], entry.mint, entry.owner, entry.ui_token_amount.decimals,
            _atoms(before.get(index)), _atoms(after.get(index)),
        ))  # fmt: skip
    return tuple(changes)


def _atoms(balance: UiTransactionTokenBalance | None) -> int:
    amount: UiTokenAmount | None = None if balance is None else balance.ui_token_amount
    return 0 if amount is None else int(amount.amount)


def _token_amount(data: bytes | None) -> int | None:
    """Return the amount of SPL token account data (offset 64, u64 LE), else None."""
    if data is None or len(data) < TOKEN_ACCOUNT_LEN:
        return None
    return int.from_bytes(data[64:72], "little")
