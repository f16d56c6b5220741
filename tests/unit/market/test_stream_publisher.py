"""The stream publisher (`actors/stream/publisher.py`) over the pipeline's fakes: random
batches of every order type through the real engine and pipeline, the book rebuilt from
the published levels, the order states against the projection's rows applied by the
fake's own reference, every trade once, and the U/u chain across a restart."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from market_harness import SPEC, Market
from msgspec.structs import astuple

from actors.market.consumers import ProjectedRows, Projector
from actors.market.seam import CommittedBatch
from actors.stream.messages import (
    AccountBatch,
    MarketBatch,
    OrderState,
    account_channel,
    decode_account,
    decode_market,
    md_channel,
)
from actors.stream.publisher import StreamPublisher
from tests.support.fakes import MemorySink
from tests.support.market_kit import request

pytestmark = pytest.mark.timeout(120)
ACCOUNTS = (1, 2, 3)
KINDS = ("limit", "limit", "limit", "market", "cancel", "amend", "amend", "iceberg",
         "stop_limit", "stop_market", "slide", "stp", "ioc")  # fmt: skip


def _new_market(shared: bool = True) -> tuple[Market, MemorySink, StreamPublisher]:
    """A market whose publisher reuses the projector's rows (as deployed) or builds its own."""
    sink = MemorySink()
    m = Market()

    def rows_of(batch: CommittedBatch) -> ProjectedRows | None:
        projector = m.core.seam.consumers[1]
        assert isinstance(projector, Projector)
        return projector.rows_of(batch)

    publisher = StreamPublisher(SPEC, sink, m.store, m.clock, rows_of if shared else None)
    m.extra.append(publisher)
    for account in ACCOUNTS:
        m.ledger.fund(account, "T", 10_000_000)
        m.ledger.fund(account, "Q", 10_000_000_000)
    return m, sink, publisher


def _command(data: st.DataObject, n: int, live: dict[str, int]) -> Any:
    kind = data.draw(st.sampled_from(KINDS))
    account = data.draw(st.sampled_from(ACCOUNTS))
    side = data.draw(st.sampled_from(["buy", "sell"]))
    price = data.draw(st.integers(95, 105))
    qty = data.draw(st.integers(1, 12))
    oid = f"o{n}"
    if kind in ("cancel", "amend") and live:
        target = data.draw(st.sampled_from(sorted(live)))
        if kind == "cancel":
            return request(f"c{n}", live[target], {"type": "cancel", "id": target})
        new_qty = data.draw(st.none() | st.integers(1, 15))
        new_price = data.draw(st.none() | st.integers(95, 105))
        if new_qty is None and new_price is None:
            new_qty = qty
        cmd = {"type": "amend", "id": target, "qty": new_qty, "price": new_price}
        return request(f"a{n}", live[target], cmd)
    cmd: dict[str, Any] = {"type": "new", "id": oid, "side": side, "kind": "limit",
                           "price": price, "qty": qty}  # fmt: skip
    if kind == "market":
        cmd.update(kind="market", price=None, tif="ioc")
    elif kind == "iceberg":
        cmd.update(qty=qty + 5, display_qty=data.draw(st.integers(1, 4)))
    elif kind in ("stop_limit", "stop_market"):
        cmd.update(kind=kind, stop_price=data.draw(st.integers(95, 105)))
        if kind == "stop_market":
            cmd.update(price=None, tif="ioc")
    elif kind == "slide":
        cmd.update(post_only="slide")
    elif kind == "stp":
        modes = ["cancel_newest", "cancel_oldest", "cancel_both", "decrement_and_cancel"]
        cmd.update(stp=data.draw(st.sampled_from(modes)))
    elif kind == "ioc":
        cmd.update(tif="ioc")
    live[oid] = account
    return request(oid, account, cmd)


class Mirror:
    """A client's book: levels set from the published messages, `qty` 0 removes."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[int, tuple[int, int]]] = {"bids": {}, "asks": {}}
        self.u: int | None = None

    def apply(self, m: MarketBatch) -> None:
        assert self.u is None or self.u + 1 == m.U, (self.u, m.U)
        assert m.u >= m.U
        self.u = m.u
        for name, levels in (("bids", m.bids), ("asks", m.asks)):
            for lv in levels:
                if lv.qty == 0:
                    assert lv.count == 0
                    self.sides[name].pop(lv.price, None)
                else:
                    self.sides[name][lv.price] = (lv.qty, lv.count)

    def equals(self, engine: Any) -> None:
        l2 = engine.l2()
        for name, levels in (("bids", l2.bids), ("asks", l2.asks)):
            assert self.sides[name] == {lv.price: (lv.qty, lv.order_count) for lv in levels}


def _states(sink: MemorySink) -> dict[str, OrderState]:
    last: dict[str, OrderState] = {}
    for account in ACCOUNTS:
        for data in sink.on(account_channel(account)):
            batch: AccountBatch = decode_account(data)
            assert batch.account_id == account
            for state in batch.orders:
                last[state.order_id] = state
    return last


def _as_row(state: OrderState) -> dict[str, Any]:
    return {
        "client_order_id": state.client_order_id, "side": state.side, "kind": state.kind,
        "tif": state.tif, "post_only": state.post_only, "stp": state.stp,
        "price_ticks": state.price, "stop_price_ticks": state.stop_price, "qty_lots": state.qty,
        "quote_qty_tick_lots": state.quote_qty, "display_qty_lots": state.display_qty,
        "expire_at_ms": state.expire_at, "open_qty_lots": state.open_qty,
        "filled_qty_lots": state.filled_qty, "filled_quote_atoms": state.filled_quote,
        "fee_atoms": state.fee, "status": state.status, "reason": state.reason,
        "last_event_seq": state.u, "created_at_ms": state.created_at,
        "updated_at_ms": state.updated_at,
    }  # fmt: skip


async def _run(batches: list[list[Any]], shared: bool) -> None:
    m, sink, publisher = _new_market(shared)
    await m.start()
    mirror = Mirror()
    seen = 0
    channel = md_channel(SPEC.symbol)
    for batch in batches:
        m.clock.now_ms += 7
        await m.submit(*batch)
        messages = sink.on(channel)
        for data in messages[seen:]:
            mirror.apply(decode_market(data))
        seen = len(messages)
        mirror.equals(m.core.engine)
        assert mirror.u in (None, m.core.engine.seq)
    await m.settled()
    trades = [t for data in sink.on(channel) for t in decode_market(data).trades]
    assert [t.id for t in trades] == [t.seq for t in m.store.trades]  # once each, in order
    assert [(t.price, t.qty, t.ts) for t in trades] == [
        (t.price_ticks, t.qty_lots, t.executed_at_ms) for t in m.store.trades
    ]
    for oid, state in _states(sink).items():
        row = asdict(m.store.order_row(oid))
        assert _as_row(state) == {k: row[k] for k in _as_row(state)}, oid
    live = {r.order_id for r in await m.store.live_orders()}
    assert {oid for oid in live if publisher.orders.get(oid) is not None} == live
    assert len(publisher.orders) == len(live) and publisher.orders.unknown == 0


@pytest.mark.parametrize("shared", [True, False], ids=["projector_rows", "own_rows"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_published_levels_rebuild_the_book_and_states_match_the_projection(
    shared: bool, data: st.DataObject
) -> None:
    live: dict[str, int] = {}
    n = 0
    batches = []
    for _ in range(data.draw(st.integers(1, 12))):
        batch = []
        for _ in range(data.draw(st.integers(1, 6))):
            n += 1
            batch.append(_command(data, n, live))
        batches.append(batch)
    asyncio.run(_run(batches, shared))


async def test_a_restart_continues_the_chain_from_the_book_and_the_orders_table() -> None:
    m, sink, publisher = _new_market()
    await m.start()
    channel = md_channel(SPEC.symbol)
    await m.submit(request("s1", 1, {"type": "new", "id": "s1", "side": "sell", "kind": "limit",
                                     "price": 100, "qty": 5}))  # fmt: skip
    await m.settled()
    [first] = [decode_market(d) for d in sink.on(channel)]
    assert (first.U, first.u, [astuple(lv) for lv in first.asks]) == (1, 1, [(100, 5, 1)])
    await m.start()  # a new incarnation: the publisher starts from what was recovered
    assert publisher.last_u == 1 and publisher.orders.get("s1") is not None
    await m.submit(request("b1", 2, {"type": "new", "id": "b1", "side": "buy", "kind": "limit",
                                     "price": 100, "qty": 2}))  # fmt: skip
    second = decode_market(sink.on(channel)[-1])
    assert (second.U, second.u) == (2, 3)  # accepted, fill
    assert [astuple(lv) for lv in second.asks] == [(100, 3, 1)] and second.bids == []
    assert [(t.id, t.price, t.qty, t.taker_side) for t in second.trades] == [(3, 100, 2, "buy")]
    seller = decode_account(sink.on(account_channel(1))[-1])
    assert [(s.order_id, s.status, s.open_qty, s.filled_qty) for s in seller.orders] == [
        ("s1", "partially_filled", 3, 2)
    ]
    assert [(f.liquidity, f.side, f.qty, f.quote, f.fee) for f in seller.fills] == [
        ("maker", "sell", 2, 200, 1)
    ]


async def test_a_batch_without_events_publishes_nothing() -> None:
    m, sink, _ = _new_market()
    await m.start()
    await m.core.admin("tick")  # nothing to expire: journaled, no event
    assert sink.messages == []
    assert msgspec.json.decode(b"[]") == []


async def test_a_failed_batch_leaves_a_gap_and_exact_levels_after_it() -> None:
    m, sink, publisher = _new_market()
    await m.start()
    sell = {"type": "new", "id": "s1", "side": "sell", "kind": "limit", "price": 100, "qty": 5}
    await m.submit(request("s1", 1, sell))
    real = publisher._levels

    def broken(*args: Any) -> Any:
        publisher._resting.clear()  # half done, then a bug
        raise RuntimeError("a bug in the publisher")

    publisher._levels = broken  # type: ignore[method-assign]
    await m.submit(request("a1", 1, {"type": "amend", "id": "s1", "price": 101}))
    publisher._levels = real  # type: ignore[method-assign]
    assert m.core.seam.failures["stream"] == 1
    await m.submit(request("c1", 1, {"type": "cancel", "id": "s1"}))
    first, third = (decode_market(d) for d in sink.on(md_channel(SPEC.symbol)))
    assert first.u + 1 < third.U  # the lost batch shows as a gap
    assert [astuple(lv) for lv in third.asks] == [(101, 0, 0)]  # s1 left the level it was at
