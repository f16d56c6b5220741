"""The deposit listener's passes over in-memory fakes of its ports: exactly once, nothing
missed, nothing credited before its depth or after it vanished."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from actors.accounts import AccountId
from actors.custody.detect import DepositSeen, TokenBalance, TxView, Vault
from actors.custody.listener import DepositListener
from actors.custody.monitor import Landed
from actors.custody.ports import PendingDeposit

PROGRAM, MINT = "Prog", "MintA"
V1 = Vault("Vault1", AccountId(1), "USDC", MINT)
V2 = Vault("Vault2", AccountId(2), "USDC", MINT)


@dataclass
class Chain:
    tip: int = 100
    history: dict[str, list[str]] = field(default_factory=dict)  # address: sigs, oldest first
    txs: dict[str, TxView] = field(default_factory=dict)
    hidden: set[str] = field(default_factory=set)  # signatures whose tx is not served yet
    lost: set[str] = field(default_factory=set)  # signatures gone from the chain

    def deposit(self, sig: str, slot: int, moves: dict[Vault, tuple[int, int]],
                programs: frozenset[str] = frozenset({"Token"})) -> None:  # fmt: skip
        pre = {v.address: TokenBalance(v.address, MINT, a) for v, (a, _) in moves.items()}
        post = {v.address: TokenBalance(v.address, MINT, b) for v, (_, b) in moves.items()}
        self.txs[sig] = TxView(sig, slot, False, programs, pre, post)
        for vault in moves:
            self.history.setdefault(vault.address, []).append(sig)

    async def slot(self) -> int:
        return self.tip

    async def signatures_since(self, address: str, until: str | None) -> list[str]:
        sigs = self.history.get(address, [])
        return sigs[sigs.index(until) + 1 :] if until is not None else list(sigs)

    async def transaction(self, signature: str) -> TxView | None:
        return None if signature in self.hidden else self.txs[signature]

    async def statuses(self, signatures: Sequence[str]) -> dict[str, Landed | None]:
        return {
            s: None if s in self.lost or s not in self.txs else Landed(self.txs[s].slot)
            for s in signatures
        }


@dataclass
class Records:
    vault_list: list[Vault]
    cursors: dict[str, str] = field(default_factory=dict)
    rows: dict[tuple[str, str], PendingDeposit] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    depth_of: dict[int, int] = field(default_factory=dict)

    async def vaults(self) -> list[Vault]:
        return self.vault_list

    async def cursor(self, address: str) -> str | None:
        return self.cursors.get(address)

    async def advance(
        self, address: str, signature: str, slot: int, seen: Sequence[DepositSeen]
    ) -> None:
        for s in seen:
            key = (s.signature, s.vault.address)
            self.rows.setdefault(key, PendingDeposit(len(self.rows) + 1, s))
        self.cursors[address] = signature

    async def pending(self) -> list[PendingDeposit]:
        return [p for p in self.rows.values() if p.deposit_id not in self.done]

    async def confirmations(self, deposit: PendingDeposit, confirmations: int) -> None:
        self.depth_of[deposit.deposit_id] = confirmations

    async def credited(self, deposit: PendingDeposit) -> None:
        self.done.add(deposit.deposit_id)


@dataclass
class Ledger:
    credits: dict[str, tuple[AccountId, str, int]] = field(default_factory=dict)
    calls: int = 0

    async def credit(self, account_id: AccountId, asset: str, amount: int, reference: str) -> None:
        self.calls += 1
        assert self.credits.setdefault(reference, (account_id, asset, amount)) == (
            account_id, asset, amount,
        )  # fmt: skip

    def balance(self, account_id: AccountId) -> int:
        return sum(n for a, _, n in self.credits.values() if a == account_id)


def _world() -> tuple[Chain, Records, Ledger, DepositListener]:
    chain, records, ledger = Chain(), Records([V1, V2]), Ledger()
    return chain, records, ledger, DepositListener(chain, records, ledger, PROGRAM, depth=32)


async def test_a_deposit_is_credited_once_at_its_depth() -> None:
    chain, records, ledger, listener = _world()
    chain.deposit("s1", 90, {V1: (0, 500)})
    report = await listener.run_pass()
    assert (report.recorded, report.credited, report.waiting) == (1, 0, 1)
    assert ledger.balance(V1.account_id) == 0 and records.depth_of == {1: 10}
    chain.tip = 122
    assert (await listener.run_pass()).credited == 1
    for _ in range(3):
        assert (await listener.run_pass()).credited == 0
    assert ledger.balance(V1.account_id) == 500


async def test_a_crash_between_the_credit_and_its_mark_credits_nothing_twice() -> None:
    chain, records, ledger, listener = _world()
    chain.deposit("s1", 10, {V1: (0, 7), V2: (3, 5)})  # one transaction, two vaults
    await listener.run_pass()
    assert (ledger.balance(V1.account_id), ledger.balance(V2.account_id)) == (7, 2)
    records.done.clear()  # the marks were lost: the next pass credits again
    assert (await listener.run_pass()).credited == 2
    assert ledger.calls == 4 and (ledger.balance(V1.account_id), ledger.balance(V2.account_id)) == (
        7, 2,
    )  # fmt: skip


async def test_a_missed_history_is_read_on_from_the_cursor() -> None:
    chain, records, ledger, listener = _world()
    chain.deposit("s1", 10, {V1: (0, 1)})
    chain.deposit("s2", 11, {V1: (1, 3)})
    chain.hidden = {"s2"}
    assert (await listener.run_pass()).signatures == 1
    assert records.cursors == {"Vault1": "s1"}
    chain.hidden.clear()
    chain.deposit("s3", 12, {V1: (3, 6)})
    assert (await listener.run_pass()).signatures == 2
    assert ledger.balance(V1.account_id) == 6


async def test_what_is_never_credited() -> None:
    chain, _, ledger, listener = _world()
    chain.deposit("ours", 10, {V1: (0, 9)}, programs=frozenset({"Token", PROGRAM}))
    chain.deposit("gone", 10, {V2: (0, 4)})
    chain.lost = {"gone"}  # seen, then lost in a fork
    report = await listener.run_pass()
    assert (report.signatures, report.recorded, report.credited, report.waiting) == (2, 1, 0, 1)
    assert ledger.credits == {}
