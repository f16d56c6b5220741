"""A trade's vault deltas: balanced per mint, fees to the fee vault, rebates, self-trades."""

from __future__ import annotations

import pytest
from hypothesis import given
from settle_harness import trade, trade_lists

from actors.settlement.trades import (
    FEE_VAULT,
    SettleTrade,
    instruction_of,
    net_deltas,
    trade_deltas,
)


@given(trade_lists(max_accounts=5, max_size=20))
def test_every_trade_sums_to_zero_per_mint(trades: list[SettleTrade]) -> None:
    for t in trades:
        deltas = trade_deltas(t)
        for side in ("base", "quote"):
            assert sum(d for (_, s), d in deltas.items() if s == side) == 0
        assert deltas[FEE_VAULT] == t.maker_fee_atoms + t.taker_fee_atoms


@pytest.mark.parametrize("taker_side", ["buy", "sell"])
def test_buyer_pays_quote_and_fee_seller_receives_quote_less_fee(taker_side: str) -> None:
    t = trade(7, maker=1, taker=2, side=taker_side, base=300, quote=9_000, maker_fee=4,
              taker_fee=11)  # fmt: skip
    buyer, seller = (2, 1) if taker_side == "buy" else (1, 2)
    buyer_fee, seller_fee = (11, 4) if taker_side == "buy" else (4, 11)
    assert trade_deltas(t) == {
        (buyer, "base"): 300,
        (seller, "base"): -300,
        (buyer, "quote"): -(9_000 + buyer_fee),
        (seller, "quote"): 9_000 - seller_fee,
        FEE_VAULT: 15,
    }


def test_a_maker_rebate_pays_the_maker_from_the_taker_fee() -> None:
    t = trade(1, maker=1, taker=2, side="buy", base=10, quote=1_000, maker_fee=-3, taker_fee=5)
    assert trade_deltas(t) == {
        (2, "base"): 10, (1, "base"): -10, (2, "quote"): -1_005, (1, "quote"): 1_003,
        FEE_VAULT: 2,
    }  # fmt: skip


def test_a_self_trade_nets_to_its_fees() -> None:
    t = trade(1, maker=4, taker=4, side="sell", base=10, quote=1_000, maker_fee=2, taker_fee=5)
    assert trade_deltas(t) == {(4, "base"): 0, (4, "quote"): -7, FEE_VAULT: 7}
    assert instruction_of(trade_deltas(t)) == (((4, "quote"), -7), (FEE_VAULT, 7))


def test_an_instruction_of_only_zeros_keeps_its_first_vault() -> None:
    assert instruction_of(trade_deltas(trade(1, maker=4, taker=4))) == (((4, "base"), 0),)
    with pytest.raises(ValueError, match="at least one vault"):
        instruction_of({})


def test_instruction_orders_vaults_by_account_then_side_fee_vault_last() -> None:
    trades = [trade(1, maker=12, taker=3, maker_fee=1), trade(2, maker=3, taker=2, quote=4_000)]
    keys = [key for key, _ in instruction_of(net_deltas(trades))]
    # Account 3 bought and sold 100 base: its base vault nets to zero and is left out.
    assert keys == [(2, "base"), (2, "quote"), (3, "quote"), (12, "base"), (12, "quote"),
                    FEE_VAULT]  # fmt: skip


@pytest.mark.parametrize(
    "fields",
    [{"seq": -1}, {"taker_side": "hold"}, {"base_atoms": 0}, {"quote_atoms": -5}],
)
def test_a_malformed_trade_is_refused(fields: dict[str, object]) -> None:
    base = dict(seq=1, maker=1, taker=2, taker_side="buy", base_atoms=1, quote_atoms=1,
                maker_fee_atoms=0, taker_fee_atoms=0, executed_at_ms=0)  # fmt: skip
    with pytest.raises(ValueError):
        SettleTrade(**{**base, **fields})  # type: ignore[arg-type]
