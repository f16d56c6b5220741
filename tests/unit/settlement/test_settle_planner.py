"""The planner: every trade in one batch, in seq order, each batch within every limit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from settle_harness import FakeClock, trade, trade_lists, v0_fits

from actors.chain.program import I64_MAX, I64_MIN, MAX_SETTLE_ENTRIES
from actors.settlement.planner import BatchPlan, Planner
from actors.settlement.trades import (
    FEE_VAULT,
    Instruction,
    SettleTrade,
    VaultKey,
    instruction_of,
    trade_deltas,
)

Sized = tuple[tuple[VaultKey, ...], ...]


class Recorder:
    """A `fits` that records every question and its answer."""

    def __init__(self, fits: Callable[[Sequence[Sequence[VaultKey]]], bool]) -> None:
        self.fits = fits
        self.answers: dict[Sized, bool] = {}
        self.calls = 0

    def __call__(self, vault_sets: Sequence[Sequence[VaultKey]]) -> bool:
        key = tuple(tuple(vaults) for vaults in vault_sets)
        self.answers[key] = answer = self.fits(vault_sets)
        self.calls += 1
        return answer


def _run(planner: Planner, trades: list[SettleTrade]) -> list[BatchPlan]:
    plans = [plan for t in trades for plan in planner.add(t)]
    last = planner.flush()
    assert planner.open_trades == 0
    return [*plans, last] if last else plans


def _summed(trades: Sequence[SettleTrade]) -> dict[VaultKey, int]:
    # The reference sum, written apart from the code under test.
    total: dict[VaultKey, int] = {}
    for t in trades:
        for key, delta in trade_deltas(t).items():
            total[key] = total.get(key, 0) + delta
    return total


def _order(key: VaultKey) -> tuple[int, int, str]:
    return (1, 0, key[1]) if key[0] is None else (0, key[0], key[1])


def _check_instruction(ins: Instruction, expected: dict[VaultKey, int]) -> None:
    assert 1 <= len(ins) <= MAX_SETTLE_ENTRIES
    keys = [key for key, _ in ins]
    assert keys == sorted(set(keys), key=_order)  # deterministic order, no vault twice
    assert all(I64_MIN <= d <= I64_MAX for _, d in ins)  # what `settle` takes
    for side in ("base", "quote"):
        assert sum(d for (_, s), d in ins if s == side) == 0
    moved = {key: delta for key, delta in expected.items() if delta != 0}
    if moved:
        assert dict(ins) == moved  # zero nets dropped
    else:
        assert len(ins) == 1 and ins[0][1] == 0 and ins[0][0] in expected


def _sized(plan: BatchPlan, netting: bool) -> Sized:
    """Return what `fits` must have approved for the plan: the vaults of its instructions
    (netted: every vault its trades touched, the set the size was measured on)."""
    if netting:
        return (tuple(sorted(_summed(plan.trades), key=_order)),)
    return tuple(tuple(key for key, _ in ins) for ins in plan.instructions)


def _could_not_take(plan: BatchPlan, nxt: SettleTrade, netting: bool, fits: Recorder) -> bool:
    """Return whether the next trade was refused by a limit (the batch was not cut early)."""
    if netting:
        net, seen = _summed([*plan.trades, nxt]), _sized(plan, netting)[0]
        if any(not I64_MIN <= d <= I64_MAX for d in net.values()):
            return True
        grown = tuple(sorted(net, key=_order))
        return grown != seen and (len(grown) > MAX_SETTLE_ENTRIES or not fits.answers[(grown,)])
    grown_sets = (*_sized(plan, netting), tuple(k for k, _ in instruction_of(trade_deltas(nxt))))
    return not fits.answers[grown_sets]


def _check_plans(
    plans: list[BatchPlan], trades: list[SettleTrade], netting: bool, max_trades: int,
    fits: Recorder,
) -> None:  # fmt: skip
    assert [t for plan in plans for t in plan.trades] == trades  # each once, in seq order
    for plan, nxt in zip(plans, [*plans[1:], None], strict=False):
        assert plan.trades and len(plan.trades) <= max_trades
        assert (plan.first_seq, plan.last_seq) == (plan.trades[0].seq, plan.trades[-1].seq)
        assert fits.answers[_sized(plan, netting)] is True
        if netting:
            assert len(plan.instructions) == 1
            _check_instruction(plan.instructions[0], _summed(plan.trades))
        else:
            assert len(plan.instructions) == len(plan.trades)
            for ins, t in zip(plan.instructions, plan.trades, strict=True):
                _check_instruction(ins, trade_deltas(t))
        if nxt is not None and len(plan.trades) < max_trades:
            assert _could_not_take(plan, nxt.trades[0], netting, fits)


@given(
    trades=trade_lists(), netting=st.booleans(), max_trades=st.integers(1, 40),
    model=st.booleans(),
)  # fmt: skip
def test_batches_partition_the_trades_within_every_limit(
    trades: list[SettleTrade], netting: bool, max_trades: int, model: bool
) -> None:
    # The byte model closes netted batches near 20 vaults; "always fits" lets them reach
    # the 32 entries of an instruction.
    fits = Recorder(v0_fits if model else lambda _: True)
    planner = Planner(netting=netting, max_trades=max_trades, interval_s=1.0, fits=fits,
                      clock=FakeClock())  # fmt: skip
    plans = _run(planner, trades)
    _check_plans(plans, trades, netting, max_trades, fits)
    if model:
        assert all(v0_fits(_sized(plan, netting=False)) for plan in plans)


@given(
    trades=trade_lists(max_accounts=8, max_size=40), netting=st.booleans(),
    verdict=st.functions(like=lambda key: True, returns=st.booleans(), pure=True),
)  # fmt: skip
def test_the_planner_respects_an_arbitrary_fits(
    trades: list[SettleTrade], netting: bool, verdict: Callable[[Sized], bool]
) -> None:
    def fits(vault_sets: Sequence[Sequence[VaultKey]]) -> bool:
        if len(vault_sets) == 1 and len(vault_sets[0]) <= 5:
            return True  # a lone trade always fits (5 vaults at most)
        return verdict(tuple(tuple(vaults) for vaults in vault_sets))

    recorder = Recorder(fits)
    planner = Planner(netting=netting, max_trades=1_000, interval_s=1.0, fits=recorder,
                      clock=FakeClock())  # fmt: skip
    _check_plans(_run(planner, trades), trades, netting, 1_000, recorder)


@given(
    trades=trade_lists(max_accounts=4, max_size=30, huge=False),
    steps=st.lists(st.tuples(st.integers(0, 700), st.booleans()), min_size=30, max_size=30),
)
def test_a_batch_closes_once_its_interval_has_passed(
    trades: list[SettleTrade], steps: list[tuple[int, bool]]
) -> None:
    clock = FakeClock()
    planner = Planner(netting=True, max_trades=1_000, interval_s=1.0, fits=lambda _: True,
                      clock=clock)  # fmt: skip
    added_at: dict[int, float] = {}
    closed: list[tuple[BatchPlan, float]] = []
    open_since = 0.0
    for t, (gap_ms, ask) in zip(trades, steps, strict=False):
        clock.now += gap_ms / 1000
        if ask and (plan := planner.due()) is not None:
            closed.append((plan, clock.now))
        if ask:  # an overdue batch never survives a call of due()
            assert planner.open_trades == 0 or clock.now - open_since < 1.0
        closed += [(plan, clock.now) for plan in planner.add(t)]
        added_at[t.seq] = clock.now
        open_since = clock.now if planner.open_trades == 1 else open_since
    for plan, at in closed:  # each closed by its interval, and no trade joined it late
        assert plan.opened_at == added_at[plan.first_seq] and at - plan.opened_at >= 1.0
        assert all(added_at[t.seq] - plan.opened_at < 1.0 for t in plan.trades)
    rest = planner.flush()
    batches = [plan for plan, _ in closed] + ([rest] if rest else [])
    assert [t for plan in batches for t in plan.trades] == trades


def test_interval_closing_with_a_fake_clock() -> None:
    clock = FakeClock()
    planner = Planner(netting=True, max_trades=10, interval_s=1.0, fits=v0_fits, clock=clock)
    assert planner.add(trade(1, 1, 2)) == []
    clock.now = 0.5
    assert planner.add(trade(2, 2, 1)) == [] and planner.due() is None
    clock.now = 1.0
    plan = planner.due()
    assert plan is not None and (plan.first_seq, plan.last_seq, plan.opened_at) == (1, 2, 0.0)
    assert planner.open_trades == 0 and planner.due() is None and planner.flush() is None
    clock.now = 1.2
    assert planner.add(trade(3, 1, 2)) == []
    clock.now = 2.2  # overdue, and due() was not called: the next trade starts a new batch
    [late] = planner.add(trade(4, 1, 2))
    assert [t.seq for t in late.trades] == [3] and late.opened_at == 1.2
    assert planner.open_trades == 1


def test_max_trades_closes_the_batch_with_its_last_trade() -> None:
    planner = Planner(netting=False, max_trades=3, interval_s=5.0, fits=v0_fits)
    assert planner.add(trade(1, 1, 2)) == [] and planner.add(trade(2, 1, 2)) == []
    [plan] = planner.add(trade(3, 1, 2))
    assert len(plan.trades) == len(plan.instructions) == 3 and planner.open_trades == 0


def test_netted_fits_is_asked_only_when_a_trade_brings_a_new_vault() -> None:
    fits = Recorder(v0_fits)
    planner = Planner(netting=True, max_trades=500, interval_s=5.0, fits=fits)
    for seq in range(1, 201):  # two accounts, both sides, fees: 5 vaults after the first
        assert planner.add(trade(seq, 1, 2, "buy" if seq % 2 else "sell", taker_fee=3)) == []
    assert fits.calls == 1
    planner.add(trade(201, 3, 1, taker_fee=3))  # account 3's two vaults are new
    assert fits.calls == 2 and fits.answers[(((1, "base"), (1, "quote"), (2, "base"),
                                              (2, "quote"), (3, "base"), (3, "quote"),
                                              FEE_VAULT),)]  # fmt: skip


def test_unnetted_fits_is_asked_once_per_trade_with_every_instruction() -> None:
    fits = Recorder(v0_fits)
    planner = Planner(netting=False, max_trades=2, interval_s=5.0, fits=fits)
    _run(planner, [trade(seq, 1, 2) for seq in range(1, 5)])
    assert fits.calls == 4 and max(len(key) for key in fits.answers) == 2


def test_a_self_trade_and_a_rebate_net_in_one_instruction() -> None:
    planner = Planner(netting=True, max_trades=10, interval_s=5.0, fits=v0_fits)
    planner.add(trade(1, 7, 7, base=10, quote=900, maker_fee=2, taker_fee=5))
    planner.add(trade(2, 7, 8, "sell", base=10, quote=1_000, maker_fee=-1, taker_fee=4))
    plan = planner.flush()
    assert plan is not None and plan.instructions == (
        (((7, "base"), 10), ((7, "quote"), -1_000 - 7 + 1), ((8, "base"), -10),
         ((8, "quote"), 1_000 - 4), (FEE_VAULT, 7 + 3)),
    )  # fmt: skip


def test_a_zero_fee_self_trade_keeps_one_zero_entry() -> None:
    planner = Planner(netting=True, max_trades=10, interval_s=5.0, fits=v0_fits)
    planner.add(trade(1, 7, 7))
    plan = planner.flush()
    assert plan is not None and plan.instructions == ((((7, "base"), 0),),)


def test_a_seq_out_of_order_is_refused_and_changes_nothing() -> None:
    planner = Planner(netting=True, max_trades=10, interval_s=5.0, fits=v0_fits)
    planner.add(trade(5, 1, 2))
    with pytest.raises(ValueError, match="out of order"):
        planner.add(trade(5, 1, 3))
    plan = planner.flush()
    assert plan is not None and [t.seq for t in plan.trades] == [5]
    assert plan.instructions == (instruction_of(trade_deltas(trade(5, 1, 2))),)


@pytest.mark.parametrize("netting", [True, False])
def test_a_trade_that_fits_no_transaction_is_refused(netting: bool) -> None:
    planner = Planner(netting=netting, max_trades=10, interval_s=5.0, fits=lambda _: False)
    with pytest.raises(ValueError, match="does not fit a transaction alone"):
        planner.add(trade(1, 1, 2))
    assert planner.open_trades == 0


@pytest.mark.parametrize(("max_trades", "interval_s"), [(0, 1.0), (10, 0.0), (10, -1.0)])
def test_bad_limits_are_refused(max_trades: int, interval_s: float) -> None:
    with pytest.raises(ValueError, match="bad limits"):
        Planner(netting=True, max_trades=max_trades, interval_s=interval_s, fits=v0_fits)


@given(trade_lists(max_accounts=60, max_size=120), st.integers(1, 4))
def test_netted_batches_of_several_instructions_move_the_sum_within_every_limit(
    trades: list[SettleTrade], max_instructions: int
) -> None:
    # A byte model with a lookup table: about 10 bytes per vault, 330 per instruction.
    def fits(vault_sets: Sequence[Sequence[VaultKey]]) -> bool:
        return 300 + sum(40 + 10 * len(v) for v in vault_sets) <= 1232

    planner = Planner(netting=True, max_trades=10_000, interval_s=1e9, fits=fits,
                      max_instructions=max_instructions)  # fmt: skip
    plans = _run(planner, trades)
    assert [t for plan in plans for t in plan.trades] == trades
    for plan in plans:
        assert 1 <= len(plan.instructions) <= max_instructions
        assert fits([[key for key, _ in ins] for ins in plan.instructions])
        moved: dict[VaultKey, int] = {}
        for ins in plan.instructions:
            assert len(ins) <= MAX_SETTLE_ENTRIES
            assert all(I64_MIN <= delta <= I64_MAX for _, delta in ins)
            for key, delta in ins:
                moved[key] = moved.get(key, 0) + delta
        expected = {k: d for k, d in _summed(plan.trades).items() if d}
        assert {k: d for k, d in moved.items() if d} == expected


def test_a_second_instruction_doubles_the_vaults_of_a_transaction() -> None:
    # 12 trades among 24 new accounts bring 49 vaults: one instruction holds 32 at most.
    trades = [trade(i + 1, maker=2 * i + 1, taker=2 * i + 2) for i in range(12)]

    def fits(vault_sets: Sequence[Sequence[VaultKey]]) -> bool:  # with a lookup table
        return 300 + sum(40 + 10 * len(v) for v in vault_sets) <= 1232

    def planned(max_instructions: int) -> list[BatchPlan]:
        return _run(Planner(netting=True, max_trades=100, interval_s=1e9, fits=fits,
                            max_instructions=max_instructions), trades)  # fmt: skip

    assert [len(p.trades) for p in planned(1)] == [7, 5]  # 7 trades: 29 vaults, 8: 33
    [both] = planned(2)
    assert [len(ins) for ins in both.instructions] == [28, 20]  # fee-free: no fee vault
