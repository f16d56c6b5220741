"""The withdrawal sender's pass: put each debited withdrawal on chain, watch its attempts,
and settle its fate: confirmed, or failed and re-credited exactly once.

The ledger was debited before a withdrawal reaches this pass (`POST /api/v1/withdrawals`).
Each attempt is recorded before it is sent, so a crash never loses a signature that may
land. `monitor.decide` says what to do with the attempts: re-send the same bytes while the
blockhash is valid, rebuild once every attempt has expired unseen, or give up. Giving up
re-credits the ledger once (reference `withdrawal-refund:<id>`) and only when no attempt
can ever land; a rebuilt attempt can never pay twice, because the program refuses a
withdrawal id it has applied.

A new attempt (the first, or a rebuild) is sent only when the account's vault on chain
holds the amount, less what this pass's earlier sends from it will take: the ledger may
hold more than the vault while trades that credited the account are not settled yet
(docs/settlement.md). Until then the withdrawal waits in its state, with no attempt and
no refusal. With settlement caught up the vault always holds it; one that has waited
`wait_s` since its debit is sent anyway (it then fails on chain and is re-credited).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from actors.custody.monitor import Confirmed, Failed, Rebuild, Resend, decide
from actors.custody.ports import ChainWriter, Ledger, VaultOf, WithdrawalJob, WithdrawalRecords
from actors.custody.references import refund_reference

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SendReport:
    """What one pass did."""

    sent: int = 0  # first attempts and rebuilt ones
    resent: int = 0
    confirmed: int = 0
    failed: int = 0
    waiting: int = 0  # not sent: the vault does not hold the amount yet


class _Funds:
    """What each vault holds on chain, less what the pass's sends from it will take."""

    def __init__(self, balances: Mapping[VaultOf, int]) -> None:
        self._free = dict(balances)

    def claim(self, job: WithdrawalJob) -> None:
        vault = (job.account_id, job.asset)
        self._free[vault] = self._free.get(vault, 0) - job.amount_atoms

    def covers(self, job: WithdrawalJob) -> bool:
        return self._free.get((job.account_id, job.asset), 0) >= job.amount_atoms


class WithdrawalSender:
    """Runs passes over the ports (see the module doc).

    Args:
        chain: The chain.
        records: The custody records.
        ledger: The ledger (for re-credits).
        depth: Slots an outcome must be below the tip to be final.
        max_attempts: Attempts (fresh blockhashes) before giving up.
        wait_s: Seconds a withdrawal waits for its vault to hold the amount before it is
            sent anyway.
    """

    def __init__(
        self, chain: ChainWriter, records: WithdrawalRecords, ledger: Ledger, depth: int,
        max_attempts: int = 3, *, wait_s: float = 120.0,
    ) -> None:  # fmt: skip
        self._chain, self._records, self._ledger = chain, records, ledger
        self._depth, self._max_attempts, self._wait_s = depth, max_attempts, wait_s

    async def run_pass(self) -> SendReport:
        """Advance every withdrawal in flight by one step: first those with attempts on
        their way (whose amounts their vaults still hold), then new attempts, oldest first,
        each if its vault holds the amount."""
        report = SendReport()
        on_their_way: list[WithdrawalJob] = []
        new = [job for job in await self._records.in_flight()
               if await self._step(job, report, on_their_way)]  # fmt: skip
        if not new:
            return report
        # Read after the steps: an attempt that lands in between is then both out of the
        # balance and claimed, which errs towards waiting, never towards a short vault.
        vaults = sorted({(job.account_id, job.asset) for job in new})
        funds = _Funds(await self._chain.vault_balances(vaults))
        for job in on_their_way:
            funds.claim(job)
        for job in new:
            if funds.covers(job):
                funds.claim(job)
            elif job.waited_s < self._wait_s:
                report.waiting += 1
                continue
            else:
                log.warning("withdrawal %d waited %.0f s for its vault to hold %d atoms: "
                            "sent anyway", job.withdrawal_id, job.waited_s,
                            job.amount_atoms)  # fmt: skip
            await self._attempt(job, report)
        return report

    async def _step(
        self, job: WithdrawalJob, report: SendReport, on_their_way: list[WithdrawalJob]
    ) -> bool:
        """Advance a withdrawal's attempts; return whether it needs a new attempt (add it
        to `on_their_way` when an attempt that has not landed may still land)."""
        attempts = await self._records.attempts(job.withdrawal_id)
        if not attempts:
            return True
        statuses = await self._chain.statuses([a.signature for a in attempts])
        height, slot = await self._chain.block_height(), await self._chain.slot()
        decision = decide(attempts, statuses, height=height, slot=slot, depth=self._depth,
                          max_attempts=self._max_attempts)  # fmt: skip
        if isinstance(decision, Resend):
            tx = next(a for a in attempts if a.signature == decision.signature)
            await self._chain.send(tx)
            on_their_way.append(job)  # not landed: its vault still holds what it takes
            report.resent += 1
        elif isinstance(decision, Rebuild):
            return True
        elif isinstance(decision, Confirmed):
            await self._records.confirmed(job.withdrawal_id, decision.signature, decision.slot)
            report.confirmed += 1
        elif isinstance(decision, Failed):
            log.warning("withdrawal %d failed (%s): re-crediting", job.withdrawal_id,
                        decision.reason)  # fmt: skip
            await self._ledger.credit(job.account_id, job.asset, job.amount_atoms,
                                      refund_reference(job.withdrawal_id))  # fmt: skip
            await self._records.failed(job.withdrawal_id, decision.reason)
            report.failed += 1
        return False

    async def _attempt(self, job: WithdrawalJob, report: SendReport) -> None:
        tx = await self._chain.build_withdrawal(job)
        await self._records.add_attempt(job.withdrawal_id, tx)
        await self._chain.send(tx)
        report.sent += 1
