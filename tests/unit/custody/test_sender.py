"""The withdrawal sender's passes over in-memory fakes of its ports: every withdrawal ends
confirmed by exactly one landed attempt, or failed and re-credited once; a new attempt
waits until its vault holds the amount (or it waited too long)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from actors.accounts import AccountId
from actors.custody.monitor import Landed
from actors.custody.ports import SignedTx, VaultOf, WithdrawalJob
from actors.custody.references import refund_reference
from actors.custody.sender import WithdrawalSender

JOB = WithdrawalJob(7, AccountId(1), "USDC", 250, "Wallet")
VALID_FOR = 150


@dataclass
class Chain:
    tip: int = 1_000
    mode: str = "land"  # what the next sends do: land, drop or refuse
    landed: dict[str, Landed] = field(default_factory=dict)
    built: int = 0
    sends: list[str] = field(default_factory=list)
    paid: dict[int, int] = field(default_factory=dict)  # withdrawal id: times applied
    vault: int = 10**9  # what every vault holds

    async def slot(self) -> int:
        return self.tip

    async def block_height(self) -> int:
        return self.tip

    async def signatures_since(self, address: str, until: str | None) -> list[str]:
        raise AssertionError("not used")

    async def transaction(self, signature: str) -> None:
        raise AssertionError("not used")

    async def statuses(self, signatures: Sequence[str]) -> dict[str, Landed | None]:
        return {s: self.landed.get(s) for s in signatures}

    async def vault_balances(self, vaults: Sequence[VaultOf]) -> dict[VaultOf, int]:
        return dict.fromkeys(vaults, self.vault)

    async def build_withdrawal(self, job: WithdrawalJob) -> SignedTx:
        self.built += 1
        return SignedTx(f"sig{self.built}", self.tip + VALID_FOR, b"%d" % job.withdrawal_id)

    async def send(self, tx: SignedTx) -> None:
        self.sends.append(tx.signature)
        if self.mode == "drop" or tx.signature in self.landed or self.tip > tx.last_valid_height:
            return
        if self.mode == "refuse":
            self.landed[tx.signature] = Landed(self.tip, "OverWithdrawalCap")
        elif self.paid.get(int(tx.wire), 0):  # the program's replay window
            self.landed[tx.signature] = Landed(self.tip, "AlreadyApplied")
        else:
            self.paid[int(tx.wire)] = 1
            self.landed[tx.signature] = Landed(self.tip)


@dataclass
class Records:
    jobs: dict[int, WithdrawalJob] = field(default_factory=lambda: {JOB.withdrawal_id: JOB})
    tries: dict[int, list[SignedTx]] = field(default_factory=dict)
    outcome: dict[int, tuple[str, str]] = field(default_factory=dict)

    async def in_flight(self) -> list[WithdrawalJob]:
        return [j for i, j in self.jobs.items() if i not in self.outcome]

    async def attempts(self, withdrawal_id: int) -> list[SignedTx]:
        return list(self.tries.get(withdrawal_id, []))

    async def add_attempt(self, withdrawal_id: int, tx: SignedTx) -> None:
        self.tries.setdefault(withdrawal_id, []).append(tx)

    async def confirmed(self, withdrawal_id: int, signature: str, slot: int) -> None:
        self.outcome[withdrawal_id] = ("confirmed", signature)

    async def failed(self, withdrawal_id: int, reason: str) -> None:
        self.outcome[withdrawal_id] = ("failed", reason)


@dataclass
class Ledger:
    credits: dict[str, int] = field(default_factory=dict)

    async def credit(self, account_id: AccountId, asset: str, amount: int, reference: str) -> None:
        self.credits.setdefault(reference, amount)


def _world(mode: str = "land") -> tuple[Chain, Records, Ledger, WithdrawalSender]:
    chain, records, ledger = Chain(mode=mode), Records(), Ledger()
    return chain, records, ledger, WithdrawalSender(chain, records, ledger, depth=32)


async def _run(chain: Chain, sender: WithdrawalSender, passes: int, slots: int) -> None:
    for _ in range(passes):
        await sender.run_pass()
        chain.tip += slots


async def test_a_withdrawal_lands_and_is_confirmed_at_depth() -> None:
    chain, records, ledger, sender = _world()
    await sender.run_pass()
    assert chain.sends == ["sig1"] and records.outcome == {}
    await _run(chain, sender, 5, 10)
    assert records.outcome == {7: ("confirmed", "sig1")} and ledger.credits == {}
    assert chain.paid == {7: 1}


async def test_a_dropped_attempt_is_resent_then_rebuilt_and_pays_once() -> None:
    chain, records, ledger, sender = _world("drop")
    await _run(chain, sender, 3, 10)  # sent, then re-sent twice: the blockhash is valid
    assert chain.sends == ["sig1"] * 3 and chain.built == 1
    chain.tip += VALID_FOR  # sig1 expired unseen
    chain.mode = "land"
    await _run(chain, sender, 6, 10)
    assert chain.built == 2 and records.outcome == {7: ("confirmed", "sig2")}
    assert chain.paid == {7: 1} and ledger.credits == {}


async def test_a_crash_between_recording_and_sending_loses_nothing() -> None:
    chain, records, ledger, sender = _world()
    records.tries[7] = [await chain.build_withdrawal(JOB)]  # recorded, never sent
    await _run(chain, sender, 6, 10)
    assert chain.built == 1 and records.outcome == {7: ("confirmed", "sig1")}
    assert ledger.credits == {}


async def test_a_late_landing_old_attempt_wins_and_its_rebuild_is_refused() -> None:
    chain, records, ledger, sender = _world()
    first = await chain.build_withdrawal(JOB)
    second = await chain.build_withdrawal(JOB)
    records.tries[7] = [first, second]
    await chain.send(first)
    await chain.send(second)  # the program refuses it: id 7 was applied
    await _run(chain, sender, 5, 10)
    assert records.outcome == {7: ("confirmed", "sig1")} and chain.paid == {7: 1}
    assert ledger.credits == {}


async def test_out_of_attempts_it_fails_and_re_credits_once() -> None:
    chain, records, ledger, sender = _world("drop")
    for _ in range(4):
        await _run(chain, sender, 1, VALID_FOR + 1)
    assert chain.built == 3 and records.outcome == {7: ("failed", "expired")}
    await _run(chain, sender, 3, 10)
    assert ledger.credits == {refund_reference(7): 250} and chain.paid == {}


async def test_a_refusal_by_the_program_fails_and_re_credits() -> None:
    chain, records, ledger, sender = _world("refuse")
    await _run(chain, sender, 5, 10)
    assert records.outcome == {7: ("failed", "OverWithdrawalCap")}
    assert ledger.credits == {refund_reference(7): 250}


async def test_a_withdrawal_waits_for_its_vault_to_hold_the_amount() -> None:
    chain, records, ledger, sender = _world()
    chain.vault = 249  # the trades that credited the account are not settled yet
    report = await sender.run_pass()
    assert (report.waiting, report.sent, chain.built, records.tries) == (1, 0, 0, {})
    chain.vault = 250
    await _run(chain, sender, 5, 10)
    assert records.outcome == {7: ("confirmed", "sig1")} and ledger.credits == {}


async def test_a_withdrawal_that_waited_too_long_is_sent_anyway_and_refused() -> None:
    chain, records, ledger, _ = _world()
    sender = WithdrawalSender(chain, records, ledger, depth=32, wait_s=120)
    chain.vault = 0
    records.jobs[7] = replace(JOB, waited_s=119.0)
    assert (await sender.run_pass()).waiting == 1 and chain.sends == []
    records.jobs[7] = replace(JOB, waited_s=120.0)
    chain.mode = "refuse"  # the program: the vault is short
    await _run(chain, sender, 5, 10)
    assert chain.built == 1 and records.outcome == {7: ("failed", "OverWithdrawalCap")}
    assert ledger.credits == {refund_reference(7): 250}


async def test_withdrawals_from_one_vault_are_sent_only_while_it_holds_them_all() -> None:
    chain, records, _, sender = _world("drop")
    chain.vault = 600
    for wid in (8, 9):
        records.jobs[wid] = replace(JOB, withdrawal_id=wid)
    report = await sender.run_pass()  # 250 + 250 fit in 600; a third 250 does not
    assert (report.sent, report.waiting, chain.sends) == (2, 1, ["sig1", "sig2"])
    report = await sender.run_pass()  # both on their way (not landed): still no room
    assert (report.resent, report.waiting, chain.built) == (2, 1, 2)
    assert 9 not in records.tries
