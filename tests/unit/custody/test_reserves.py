"""The reconciliation formula's terms and difference."""

from __future__ import annotations

from actors.custody.reserves import reserves


def test_the_formula_balances_when_every_term_is_accounted_for() -> None:
    # 1,000 credited; a 50 deposit waiting for depth; 30 debited but not yet sent.
    ledger = {"USDC": {"available": 900, "locked": 60, "fees": 10, "credited": 1_000}}
    (row,) = reserves({"USDC": 1_020}, ledger, {"USDC": 50}, {"USDC": 30})
    assert row.ledger == 970 and row.expected == 990 and row.difference == 30
    (row,) = reserves({"USDC": 990}, ledger, {"USDC": 50}, {"USDC": 30})
    assert row.difference == 0
    assert row.as_dict()["expected"] == 990


def test_every_asset_any_side_names_is_shown() -> None:
    rows = reserves({"SOL": 5}, {"USDC": {"available": 7}}, {}, {}, {"BTC": 0})
    assert [(r.asset, r.difference) for r in rows] == [("BTC", 0), ("SOL", 5), ("USDC", -7)]


def test_unsettled_trades_move_money_between_vaults_of_one_asset() -> None:
    # Per vault the ledger leads the chain by the unsettled net; summed over an asset, zero.
    (row,) = reserves({"USDC": 100}, {"USDC": {"available": 110}}, {}, {}, {"USDC": 10})
    assert row.difference == 0
