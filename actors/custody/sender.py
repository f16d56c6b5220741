"""The withdrawal sender's pass: put each debited withdrawal on chain, watch its attempts,
and settle its fate: confirmed, or failed and re-credited exactly once.

The ledger was debited before a withdrawal reaches this pass (`POST /api/v1/withdrawals`).
Each attempt is recorded before it is sent, so a crash never loses a signature that may
land. `monitor.decide` says what to do with the attempts: re-send the same bytes while the
blockhash is valid, rebuild once every attempt has expired unseen, or give up. Giving up
re-credits the ledger once (reference `withdrawal-refund:<id>`) and only when no attempt
can ever land; a rebuilt attempt can never pay twice, because the program refuses a
withdrawal id it has applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from actors.custody.monitor import Confirmed, Failed, Rebuild, Resend, decide
from actors.custody.ports import ChainWriter, Ledger, WithdrawalJob, WithdrawalRecords
from actors.custody.references import refund_reference

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SendReport:
    """What one pass did."""

    sent: int = 0  # first attempts and rebuilt ones
    resent: int = 0
    confirmed: int = 0
    failed: int = 0


class WithdrawalSender:
    """Runs passes over the ports (see the module doc).

    Args:
        chain: The chain.
        records: The custody records.
        ledger: The ledger (for re-credits).
        depth: Slots an outcome must be below the tip to be final.
        max_attempts: Attempts (fresh blockhashes) before giving up.
    """

    def __init__(
        self, chain: ChainWriter, records: WithdrawalRecords, ledger: Ledger, depth: int,
        max_attempts: int = 3,
    ) -> None:  # fmt: skip
        self._chain, self._records, self._ledger = chain, records, ledger
        self._depth, self._max_attempts = depth, max_attempts

    async def run_pass(self) -> SendReport:
        """Advance every withdrawal in flight by one step."""
        report = SendReport()
        for job in await self._records.in_flight():
            await self._step(job, report)
        return report

    async def _step(self, job: WithdrawalJob, report: SendReport) -> None:
        attempts = await self._records.attempts(job.withdrawal_id)
        if not attempts:
            await self._attempt(job, report)
            return
        statuses = await self._chain.statuses([a.signature for a in attempts])
        height, slot = await self._chain.block_height(), await self._chain.slot()
        decision = decide(attempts, statuses, height=height, slot=slot, depth=self._depth,
                          max_attempts=self._max_attempts)  # fmt: skip
        if isinstance(decision, Resend):
            tx = next(a for a in attempts if a.signature == decision.signature)
            await self._chain.send(tx)
            report.resent += 1
        elif isinstance(decision, Rebuild):
            await self._attempt(job, report)
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

    async def _attempt(self, job: WithdrawalJob, report: SendReport) -> None:
        tx = await self._chain.build_withdrawal(job)
        await self._records.add_attempt(job.withdrawal_id, tx)
        await self._chain.send(tx)
        report.sent += 1
