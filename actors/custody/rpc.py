"""`RpcChain`: custody's chain ports (`ports.ChainReader`, `ports.ChainWriter`) over the
JSON-RPC client and the exchange program's instructions.

A withdrawal pays the destination wallet's associated token account for the asset's mint,
created in the same transaction when it does not exist (the operator pays its rent), so a
user names a wallet, as on any exchange. Withdrawals are sent without preflight: a refusal
by the program then lands with its error, which the monitor reads as the final answer,
instead of a preflight error that leaves nothing on chain to look up.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence

from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.instructions import (
    create_idempotent_associated_token_account,
    get_associated_token_address,
)

from actors.chain.client import (
    AlreadyProcessedError,
    ChainClient,
    SignatureStatus,
    program_error_code,
)
from actors.chain.program import error_name, ix_withdraw, vault_pda
from actors.custody.detect import TokenBalance, TxView
from actors.custody.monitor import Landed
from actors.custody.ports import SignedTx, VaultOf, WithdrawalJob

_INVOKE = re.compile(r"^Program (\w+) invoke \[\d+\]$")


def landed_of(status: SignatureStatus | None) -> Landed | None:
    """Return a signature status as the monitor reads it (the program's error by name)."""
    if status is None:
        return None
    if status.err is None:
        return Landed(status.slot)
    code = program_error_code(status.err)
    name = None if code is None else error_name(code)
    return Landed(status.slot, name or str(status.err))


class RpcChain:
    """The chain ports over a `ChainClient`.

    Args:
        client: The JSON-RPC client.
        program_id: The exchange program.
        operator: The hot operator key (signs and pays).
        mints: Each asset's mint, by symbol.
    """

    def __init__(
        self, client: ChainClient, program_id: Pubkey, operator: Keypair,
        mints: Mapping[str, Pubkey],
    ) -> None:  # fmt: skip
        self.client, self.program_id, self.operator = client, program_id, operator
        self.mints = dict(mints)

    async def slot(self) -> int:
        """Return the newest slot."""
        return await self.client.slot("processed")

    async def block_height(self) -> int:
        """Return the newest block height."""
        return await self.client.block_height("processed")

    async def signatures_since(self, address: str, until: str | None) -> list[str]:
        """Return the address's signatures after `until`, oldest first (`confirmed`)."""
        after = None if until is None else Signature.from_string(until)
        found = await self.client.signatures_since(Pubkey.from_string(address), after)
        return [str(s.signature) for s in found]

    async def transaction(self, signature: str) -> TxView | None:
        """Return a landed transaction's view, or None when the node does not have it yet."""
        landed = await self.client.transaction(Signature.from_string(signature))
        if landed is None:
            return None
        programs = frozenset(m.group(1) for m in map(_INVOKE.match, landed.logs) if m)
        pre, post = {}, {}
        for change in landed.token_changes:
            address, mint = str(change.account), str(change.mint)
            pre[address] = TokenBalance(address, mint, change.pre_atoms)
            post[address] = TokenBalance(address, mint, change.post_atoms)
        return TxView(signature, landed.slot, landed.err is not None, programs, pre, post)

    async def statuses(self, signatures: Sequence[str]) -> dict[str, Landed | None]:
        """Return each signature's status."""
        found = await self.client.signature_statuses([Signature.from_string(s) for s in signatures])
        return {s: landed_of(status) for s, status in zip(signatures, found, strict=True)}

    async def vault_balances(self, vaults: Sequence[VaultOf]) -> dict[VaultOf, int]:
        """Return what each vault holds on chain at `confirmed` (0: no such vault)."""
        addresses = {v: vault_pda(self.program_id, self.mints[v[1]], v[0]) for v in vaults}
        found = await self.client.token_balances(list(addresses.values()), "confirmed")
        return {v: found.get(address) or 0 for v, address in addresses.items()}

    async def build_withdrawal(self, job: WithdrawalJob) -> SignedTx:
        """Build and sign a withdrawal to the destination wallet's associated token account."""
        mint, wallet = self.mints[job.asset], Pubkey.from_string(job.destination)
        operator = self.operator.pubkey()
        destination = get_associated_token_address(wallet, mint)
        instructions = [
            create_idempotent_associated_token_account(operator, wallet, mint),
            ix_withdraw(self.program_id, operator=operator, mint=mint,
                        account_id=job.account_id, withdrawal_id=job.withdrawal_id,
                        amount_atoms=job.amount_atoms, destination=destination),
        ]  # fmt: skip
        blockhash = await self.client.latest_blockhash("confirmed")
        message = MessageV0.try_compile(operator, instructions, [], blockhash.blockhash)
        tx = VersionedTransaction(message, [self.operator])
        return SignedTx(str(tx.signatures[0]), blockhash.last_valid_block_height, bytes(tx))

    async def send(self, tx: SignedTx) -> None:
        """Send signed bytes (again); a copy that already landed is no error."""
        with contextlib.suppress(AlreadyProcessedError):
            await self.client.send_transaction(
                VersionedTransaction.from_bytes(tx.wire), skip_preflight=True
            )
