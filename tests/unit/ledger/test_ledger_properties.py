"""Property: random order flow through the real engine and two ledger shards conserves money.

After every command (orders, cancels, amends, and withdrawals: a debit of some of what is
available, refunded by a credit at times): per asset, available + locked + fees summed over
the shards equals the credits minus the debits; each shard's holdings are its accounts'
balances and sum to its totals; nothing is negative (the core raises
otherwise); every reservation record belongs to a live order and covers what its remainder
needs. When the book is emptied,
nothing stays locked.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_harness import FLOW_SPEC, MARKET_ORDERS, PRICES, QUANTITIES, SIDES, Desk, limit_orders

from actors.ledger.core import LedgerCore
from actors.ledger.rules import InsufficientBalanceError, required_now

OWNERS = (0, 1, 2, 3)
SPEC = FLOW_SPEC

_owner = st.sampled_from(OWNERS)
_limit = limit_orders(["gtc", "ioc", "fok"])
_post_only = st.fixed_dictionaries(
    {"side": SIDES, "price": PRICES, "qty": QUANTITIES,
     "post_only": st.sampled_from(["reject", "slide"])}
)  # fmt: skip
_market = MARKET_ORDERS
_stop = st.one_of(
    st.fixed_dictionaries({"side": SIDES, "kind": st.just("stop_limit"), "price": PRICES,
                           "stop_price": PRICES, "qty": QUANTITIES}),
    # Stop-market buys by quote budget (a stop-market buy by quantity needs the protection
    # budget the market actor computes), stop-market sells by quantity.
    st.fixed_dictionaries({"side": st.just("buy"), "kind": st.just("stop_market"),
                           "stop_price": PRICES, "quote_qty": st.integers(50, 2_000)}),
    st.fixed_dictionaries({"side": st.just("sell"), "kind": st.just("stop_market"),
                           "stop_price": PRICES, "qty": QUANTITIES}),
)  # fmt: skip
_new = st.tuples(st.just("new"), _owner, st.one_of(_limit, _limit, _post_only, _market, _stop))
_op = st.one_of(
    _new,
    _new,
    _new,
    st.tuples(st.just("cancel"), st.just(0), st.integers(0, 1_000)),
    st.tuples(st.just("amend"), st.just(0), st.tuples(st.integers(0, 1_000), PRICES, QUANTITIES)),
    st.tuples(st.just("withdraw"), _owner,
              st.tuples(st.sampled_from(["P", "Q"]), st.integers(1, 20_000), st.booleans())),
)  # fmt: skip


def _check(desk: Desk) -> None:
    for asset, (held, credited) in desk.conserved().items():
        assert held == credited, asset
    live = {o.id for o in desk.engine.l3()} | {o.id for o in desk.engine.stops()}
    for shard in desk.shards:
        for record in shard.records():
            assert record.order_id in live
            need = required_now(desk.spec, record)
            assert need is None or record.reserved_atoms >= need
            assert record.pending_atoms == 0
        for asset, totals in shard.totals().items():
            assert totals.available >= 0 and totals.locked >= 0, asset
        _check_holdings(desk, shard)


def _check_holdings(desk: Desk, shard: LedgerCore) -> None:
    """The holdings are every account's balance and sum to the totals."""
    holdings = shard.holdings()
    assert holdings.totals == shard.totals()
    assert holdings.marks == ({desk.spec.symbol: desk.journal_seq} if desk.journal_seq else {})
    sums: dict[str, int] = {}
    for (account, asset), atoms in holdings.accounts.items():
        assert atoms == sum(shard.balance(account, asset)) > 0
        sums[asset] = sums.get(asset, 0) + atoms
    for asset, totals in holdings.totals.items():
        assert sums.get(asset, 0) == totals.available + totals.locked, asset


def _run(desk: Desk, op: tuple[str, int, Any], n: int) -> None:
    kind, owner, arg = op
    if kind == "new":
        desk.place(owner, f"o{n}", **arg)
        return
    if kind == "withdraw":
        _withdraw(desk, owner, n, arg)
        return
    # Cancel or amend one of the live orders, picked by index.
    live = desk.engine.l3() + desk.engine.stops()
    if not live:
        return
    view = live[(arg if kind == "cancel" else arg[0]) % len(live)]
    owner = int(view.owner)
    if kind == "cancel":
        desk.cancel(owner, view.id)
    elif view.status == "resting":
        desk.amend(owner, view.id, arg[1], arg[2])


def _withdraw(desk: Desk, owner: int, n: int, withdrawal: tuple[str, int, bool]) -> None:
    """Debit `atoms` if available (else the debit refuses and changes nothing), repeat it
    (a no-op), and refund it by a credit when `refund` (a failed withdrawal)."""
    asset, atoms, refund = withdrawal
    shard = desk.shard(owner)
    before = shard.balance(owner, asset)
    try:
        assert shard.debit(owner, asset, atoms, f"withdrawal:{n}")
    except InsufficientBalanceError:
        assert before[0] < atoms and shard.balance(owner, asset) == before
        return
    assert shard.balance(owner, asset) == (before[0] - atoms, before[1])
    assert not shard.debit(owner, asset, atoms, f"withdrawal:{n}")
    if refund:
        assert shard.credit(owner, asset, atoms, f"withdrawal-refund:{n}")
        assert not shard.credit(owner, asset, atoms, f"withdrawal-refund:{n}")
        assert shard.balance(owner, asset) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(_op, min_size=20, max_size=60),
    funds=st.lists(st.one_of(st.just(0), st.integers(500, 30_000)), min_size=8, max_size=8),
)
def test_random_flow_conserves_and_releases_everything(
    ops: list[tuple[str, int, Any]], funds: list[int]
) -> None:
    desk = Desk(SPEC, shard_count=2)
    for owner in OWNERS:
        for asset, amount in zip(("P", "Q"), funds[2 * owner : 2 * owner + 2], strict=True):
            if amount:
                desk.fund(owner, asset, amount)
    for n, op in enumerate(ops):
        _run(desk, op, n)
        _check(desk)
    for owner in OWNERS:
        desk.submit({"type": "cancel_all", "owner": str(owner)})
    _check(desk)
    assert not desk.engine.l3() and not desk.engine.stops()
    for shard in desk.shards:
        assert list(shard.records()) == []
        assert all(t.locked == 0 for t in shard.totals().values())
