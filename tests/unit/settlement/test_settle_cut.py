"""`actors.settlement.cut` without a database: a cut settlement's parts are regrouped as
the planner grouped them, and neither part's transaction is larger than the whole's."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from settle_harness import trade, trade_lists

from actors.settlement.cut import instructions_of, split
from actors.settlement.planner import Planner
from actors.settlement.trades import Instruction, SettleTrade, VaultKey


def _fits(vault_sets: Sequence[Sequence[VaultKey]]) -> bool:
    # A byte model with a lookup table (as in test_settle_planner): ~10 bytes per vault.
    return 300 + sum(40 + 10 * len(v) for v in vault_sets) <= 1232


def _vaults(instructions: Sequence[Instruction]) -> list[list[VaultKey]]:
    return [[key for key, _ in ins] for ins in instructions]


def _cut_down(trades: list[SettleTrade]) -> None:
    """Cut as the batcher may, down to single trades: every part fits as the whole did."""
    if len(trades) < 2:
        return
    at = split(trades, True)
    assert 0 < at < len(trades)
    for part in (trades[:at], trades[at:]):
        assert _fits(_vaults(instructions_of(part, True)))
        _cut_down(part)


@settings(max_examples=60, deadline=None)
@given(trade_lists(max_accounts=60, max_size=120, huge=False), st.integers(2, 3))
def test_cut_parts_of_a_planned_batch_fit_as_the_batch_did(
    trades: list[SettleTrade], max_instructions: int
) -> None:
    planner = Planner(netting=True, max_trades=10_000, interval_s=1e9, fits=_fits,
                      max_instructions=max_instructions)  # fmt: skip
    plans = [plan for t in trades for plan in planner.add(t)]
    plans += filter(None, [planner.flush()])
    for plan in plans:
        assert instructions_of(list(plan.trades), True) == plan.instructions
        _cut_down(list(plan.trades))


def test_a_settlement_of_two_instructions_is_cut_between_them() -> None:
    # 24 trades, each between a maker (1 or 2) and a new taker: 13 fill the first
    # instruction (the makers' 4 vaults, the fee vault, 2 per taker: 31). Halving at 12
    # would net trade 13 with the second instruction's trades: an instruction the planner
    # never measured (near 2 full instructions, halves can name more vaults than the whole).
    trades = [trade(i, maker=1 + i % 2, taker=100 + i, taker_fee=1) for i in range(1, 25)]
    whole = instructions_of(trades, True)
    assert len(whole) == 2
    at = split(trades, True)
    assert instructions_of(trades[:at], True) == whole[:1]
    assert instructions_of(trades[at:], True) == whole[1:]
    halves = [instructions_of(trades[:12], True), instructions_of(trades[12:], True)]
    assert sum(map(len, _vaults(halves[1]))) > sum(map(len, _vaults(whole[1:])))
