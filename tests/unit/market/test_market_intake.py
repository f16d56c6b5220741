"""A trader's command becomes the engine command the journal replays: what the market
journals decodes, through the replay codec, to the very command it matched."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actors.accounts import AccountId
from actors.contracts import AmendOrder, CancelAllOrders, CancelOrder, PlaceOrder
from actors.engine import (
    Amend,
    Cancel,
    CancelAll,
    Malformed,
    Millis,
    NewOrder,
    OrderKind,
    PostOnly,
    Side,
    StpMode,
    TimeInForce,
)
from actors.engine.codec import command_from_dict, command_to_dict
from actors.engine.validation import new_order_malformed
from actors.journal_codec import encode_command
from actors.market.intake import Item, engine_command, segment_keys

# Values a caller might pass, well typed or not (the types are not checked at run time).
_INTS = st.one_of(st.none(), st.integers(-5, 2**63), st.just(True), st.just("7"))
_IDS = st.one_of(st.text(min_size=0, max_size=4), st.just(5), st.none())


def _enum(cls: Any) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(list(cls)), st.sampled_from([m.value for m in cls]))


_PLACE = st.builds(
    PlaceOrder, _IDS, _enum(Side), _enum(OrderKind), qty=_INTS, price=_INTS, stop_price=_INTS,
    tif=_enum(TimeInForce), expire_at=_INTS, post_only=st.one_of(st.none(), _enum(PostOnly)),
    display_qty=_INTS, quote_qty=_INTS, stp=_enum(StpMode),
)  # fmt: skip
_COMMANDS = st.one_of(
    _PLACE,
    st.builds(AmendOrder, _IDS, qty=_INTS, price=_INTS),
    st.builds(CancelOrder, _IDS),
    st.just(CancelAllOrders()),
)


@given(_COMMANDS, st.integers(0, 10**6), st.integers(0, 2**40))
def test_what_the_market_journals_replays_to_the_command_it_matched(
    request: Any, account: int, ts: int
) -> None:
    item = Item("r", AccountId(account), None, request)
    command = engine_command(item, Millis(ts))
    if isinstance(command, NewOrder) and new_order_malformed(command):
        return  # refused before matching: never journaled
    stored = encode_command(command)
    assert stored == command_to_dict(command)
    assert command_from_dict(stored) == command


def test_operator_commands_and_bad_requests() -> None:
    assert engine_command(Item("h", None, None, "halt"), Millis(5)) == command_from_dict(
        {"type": "halt", "ts": 5}
    )
    assert engine_command(Item("x", None, None, "bogus"), Millis(5)) == Malformed()
    cancel = engine_command(Item("c", AccountId(3), None, CancelOrder("")), Millis(5))
    assert cancel == Malformed("")  # the codec would not decode an empty id either


def test_segments_follow_what_a_command_changes_and_reads() -> None:
    place = PlaceOrder("o", Side.SELL, OrderKind.LIMIT, 1, 5)
    new = engine_command(Item("n", AccountId(1), None, place), Millis(1))
    amend = Amend("o", "1", Millis(1), qty=2)
    market_buy = NewOrder("m", "1", Side.BUY, OrderKind.MARKET, Millis(1), qty=1)
    book = "\x00book"
    assert segment_keys(new) == (["o", book], ["o"])
    assert segment_keys(amend) == (["o", book], ["o", "owner:1"])
    assert segment_keys(market_buy) == (["m", book], [book])  # its budget: the best ask
    assert segment_keys(Cancel("o", "1", Millis(1))) == (["o", book], [])
    assert segment_keys(CancelAll("1", Millis(1))) == (["owner:1", book], [])
