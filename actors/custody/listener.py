"""The deposit listener's pass: read each vault's new transactions, record the deposits they
made, and credit the ledger for those deep enough, exactly once.

Exactly once, and nothing missed, through any crash or missed poll:
- A vault's cursor (its last signature read) moves in the same database transaction that
  records that signature's deposits, so a restart reads on from where the records end, and
  history is read from the chain (`getSignaturesForAddress` after the cursor) however long
  the listener was away.
- Recording is idempotent (one row per signature and vault), and the ledger credits once
  per reference (`deposit:<signature>:<vault>`), so a pass that crashes between the credit
  and marking the row credited credits nothing twice when it runs again.
- A deposit is credited only when its signature's status, read again at credit time, shows
  it landed without error at least `depth` slots below the tip: a transaction seen once and
  then lost (a fork) is never credited.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.custody.detect import Vault, deposits_in
from actors.custody.ports import ChainReader, DepositRecords, Ledger


@dataclass(slots=True)
class PassReport:
    """What one pass did."""

    signatures: int = 0  # new signatures read
    recorded: int = 0  # deposits found in them
    credited: int = 0  # deposits credited
    waiting: int = 0  # deposits still below the depth


class DepositListener:
    """Runs passes over the ports (see the module doc).

    Args:
        chain: The chain.
        records: The custody records.
        ledger: The ledger.
        program_id: The exchange program (its transactions are not deposits).
        depth: Confirmations a deposit needs before it is credited.
    """

    def __init__(
        self, chain: ChainReader, records: DepositRecords, ledger: Ledger, program_id: str,
        depth: int,
    ) -> None:  # fmt: skip
        self._chain, self._records, self._ledger = chain, records, ledger
        self._program_id = program_id
        self._depth = depth

    async def run_pass(self) -> PassReport:
        """Read every vault's new transactions, then credit what is deep enough."""
        report = PassReport()
        vaults = await self._records.vaults()
        by_address = {v.address: v for v in vaults}
        for vault in vaults:
            await self._read_vault(vault, by_address, report)
        await self._credit_deep(report)
        return report

    async def _read_vault(self, vault: Vault, vaults: dict[str, Vault], report: PassReport) -> None:
        cursor = await self._records.cursor(vault.address)
        for signature in await self._chain.signatures_since(vault.address, cursor):
            tx = await self._chain.transaction(signature)
            if tx is None:
                return  # not served yet: the next pass reads on from here
            seen = [d for d in deposits_in(tx, vaults, self._program_id) if d.vault == vault]
            await self._records.advance(vault.address, signature, tx.slot, seen)
            report.signatures += 1
            report.recorded += len(seen)

    async def _credit_deep(self, report: PassReport) -> None:
        pending = await self._records.pending()
        if not pending:
            return
        slot = await self._chain.slot()
        statuses = await self._chain.statuses(sorted({p.seen.signature for p in pending}))
        for deposit in pending:
            status = statuses.get(deposit.seen.signature)
            if status is None or status.error is not None:
                report.waiting += 1  # not (or no longer) on chain: never credited like this
                continue
            depth = max(0, slot - status.slot)
            if depth < self._depth:
                await self._records.confirmations(deposit, depth)
                report.waiting += 1
                continue
            seen = deposit.seen
            await self._ledger.credit(
                seen.vault.account_id, seen.vault.asset, seen.amount_atoms, seen.reference
            )
            await self._records.confirmations(deposit, depth)
            await self._records.credited(deposit)
            report.credited += 1
