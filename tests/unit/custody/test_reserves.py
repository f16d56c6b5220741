"""The reconciliation formula's terms and difference, per asset and per vault."""

from __future__ import annotations

import pytest

from actors.accounts import AccountId
from actors.custody.reserves import VaultKey, reserves, vault_reserves

BUYER, SELLER = AccountId(1), AccountId(2)


def test_the_formula_balances_when_every_term_is_accounted_for() -> None:
    # 1,000 credited, 30 of it debited for a withdrawal not yet out of its vault; a 50
    # deposit waiting for its depth: the vaults hold 1,000 + 50 (the 30 has not left).
    ledger = {"USDC": {"available": 900, "locked": 60, "fees": 10, "credited": 1_000}}
    (row,) = reserves({"USDC": 1_080}, ledger, {"USDC": 50}, {"USDC": 30})
    assert row.ledger == 970 and row.expected == 1_050 and row.difference == 30
    (row,) = reserves({"USDC": 1_050}, ledger, {"USDC": 50}, {"USDC": 30})
    assert row.difference == 0
    assert row.as_dict()["expected"] == 1_050


def test_a_withdrawal_debited_then_paid_keeps_the_difference_at_zero() -> None:
    # Debited: the ledger drops, the vault still holds it (in flight). Landed: both agree.
    credited = {"USDC": {"available": 100}}
    assert reserves({"USDC": 100}, credited, {}, {})[0].difference == 0
    debited = {"USDC": {"available": 70}}
    assert reserves({"USDC": 100}, debited, {}, {"USDC": 30})[0].difference == 0
    assert reserves({"USDC": 70}, debited, {}, {})[0].difference == 0


def test_every_asset_any_side_names_is_shown() -> None:
    rows = reserves({"SOL": 5}, {"USDC": {"available": 7}}, {}, {}, {"BTC": 0})
    assert [(r.asset, r.difference) for r in rows] == [("BTC", 0), ("SOL", 5), ("USDC", -7)]


def test_unsettled_trades_move_money_between_vaults_of_one_asset() -> None:
    # Per vault the ledger leads the chain by the unsettled net; summed over an asset, zero.
    (row,) = reserves({"USDC": 100}, {"USDC": {"available": 110}}, {}, {}, {"USDC": 10})
    assert row.difference == 0


def test_per_vault_the_chain_plus_the_unsettled_trades_is_the_ledger() -> None:
    # Each deposited 1,000; a trade not yet settled: the buyer got 5 SOL for 100 USDC and
    # a fee of 1, the seller got 100 USDC less a fee of 2; the buyer has 40 USDC on its way
    # out and 7 USDC deposited below the depth.
    addresses: dict[VaultKey, str] = {
        (None, "USDC"): "fee", (BUYER, "USDC"): "b-usdc", (SELLER, "USDC"): "s-usdc",
        (BUYER, "SOL"): "b-sol", (SELLER, "SOL"): "s-sol",
    }  # fmt: skip
    unsettled: dict[VaultKey, int] = {
        (BUYER, "SOL"): 5, (SELLER, "SOL"): -5, (BUYER, "USDC"): -101,
        (SELLER, "USDC"): 98, (None, "USDC"): 3,
    }  # fmt: skip
    ledger: dict[VaultKey, int] = {
        (BUYER, "SOL"): 5, (SELLER, "SOL"): 995, (BUYER, "USDC"): 1_000 - 101 - 40,
        (SELLER, "USDC"): 98, (None, "USDC"): 3,
    }  # fmt: skip
    on_chain: dict[VaultKey, int] = {
        (SELLER, "SOL"): 1_000, (BUYER, "USDC"): 1_007, (SELLER, "USDC"): 0,
    }  # fmt: skip
    rows = vault_reserves(
        addresses, on_chain=on_chain, ledger=ledger, deposits_pending={(BUYER, "USDC"): 7},
        withdrawals_in_flight={(BUYER, "USDC"): 40}, unsettled=unsettled,
    )  # fmt: skip
    assert [(r.asset, r.account_id) for r in rows] == [
        ("SOL", BUYER), ("SOL", SELLER), ("USDC", None), ("USDC", BUYER), ("USDC", SELLER)
    ]  # fmt: skip
    assert all(r.difference == 0 for r in rows), [r.as_dict() for r in rows]
    buyer_usdc = rows[3]
    assert (buyer_usdc.expected, buyer_usdc.address) == (1_007, "b-usdc")
    # Settled wrongly: 1 atom paid to the seller instead of the fee vault.
    moved = {**on_chain, (SELLER, "USDC"): 1}
    rows = vault_reserves(
        addresses, on_chain=moved, ledger=ledger, deposits_pending={(BUYER, "USDC"): 7},
        withdrawals_in_flight={(BUYER, "USDC"): 40}, unsettled=unsettled,
    )  # fmt: skip
    assert [(r.account_id, r.difference) for r in rows if r.difference] == [(SELLER, 1)]


def test_a_term_of_a_vault_without_an_address_is_refused() -> None:
    with pytest.raises(KeyError, match="without an address"):
        vault_reserves({}, on_chain={}, ledger={(BUYER, "SOL"): 1}, deposits_pending={},
                       withdrawals_in_flight={}, unsettled={})  # fmt: skip
