"""Deposits found in a transaction's token balances."""

from __future__ import annotations

from actors.accounts import AccountId
from actors.custody.detect import TokenBalance, TxView, Vault, confirmations, deposits_in

PROGRAM, TOKEN, MINT, OTHER_MINT = "Prog1111", "Tokenkeg", "MintA", "MintB"
V1 = Vault("Vault1", AccountId(1), "USDC", MINT)
V2 = Vault("Vault2", AccountId(2), "USDC", MINT)
VAULTS = {v.address: v for v in (V1, V2)}


def _tx(pre: dict[str, int], post: dict[str, int], *, programs: set[str] | None = None,
        failed: bool = False, mint: str = MINT) -> TxView:  # fmt: skip
    def balances(d: dict[str, int]) -> dict[str, TokenBalance]:
        return {a: TokenBalance(a, mint, n) for a, n in d.items()}

    return TxView("sigX", 42, failed, frozenset(programs or {TOKEN}), balances(pre), balances(post))


def test_a_transfer_into_a_vault_is_a_deposit_of_the_difference() -> None:
    (seen,) = deposits_in(_tx({"Wallet": 500, "Vault1": 10}, {"Wallet": 400, "Vault1": 110}),
                          VAULTS, PROGRAM)  # fmt: skip
    assert (seen.vault, seen.amount_atoms, seen.slot) == (V1, 100, 42)
    assert seen.reference == "deposit:sigX:Vault1"


def test_a_new_vault_account_counts_from_zero_and_several_vaults_are_found() -> None:
    seen = deposits_in(_tx({"Vault1": 0}, {"Vault1": 5, "Vault2": 7}), VAULTS, PROGRAM)
    assert [(s.vault.address, s.amount_atoms) for s in seen] == [("Vault1", 5), ("Vault2", 7)]


def test_what_is_not_a_deposit() -> None:
    grown = ({"Vault1": 0}, {"Vault1": 5})
    assert deposits_in(_tx(*grown, failed=True), VAULTS, PROGRAM) == []
    assert deposits_in(_tx(*grown, programs={TOKEN, PROGRAM}), VAULTS, PROGRAM) == []  # ours
    assert deposits_in(_tx(*grown, mint=OTHER_MINT), VAULTS, PROGRAM) == []  # not its mint
    assert deposits_in(_tx({"Vault1": 9}, {"Vault1": 4}), VAULTS, PROGRAM) == []  # it shrank
    assert deposits_in(_tx({"Stranger": 0}, {"Stranger": 5}), VAULTS, PROGRAM) == []


def test_confirmations_count_slots_below_the_tip() -> None:
    assert [confirmations(10, s) for s in (9, 10, 11, 42)] == [0, 0, 1, 32]
