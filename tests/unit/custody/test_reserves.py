"""The reconciliation formula's terms and difference."""

from __future__ import annotations

from actors.custody.reserves import reserves


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
