"""The WebSocket book without I/O: mirror, group views and diffs, checksum, conflation."""

from __future__ import annotations

import zlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.engine import MarketSpec
from actors.stream.messages import Level, MarketBatch
from serve_app.ws.book import BookMirror, BookView, Conflator, Formatter, checksum

SPEC = MarketSpec("SOL-USDC", base_decimals=9, quote_decimals=6, tick_size=10_000,
                  lot_size=1_000_000)  # fmt: skip


def _top(side: dict[int, int], depth: int, bids: bool) -> dict[int, int]:
    prices = sorted(side, reverse=bids)[:depth]
    return {p: side[p] for p in prices}


def _apply(client: dict[int, int], changes: list[tuple[int, int]]) -> None:
    for price, qty in changes:
        if qty == 0:
            client.pop(price, None)
        else:
            client[price] = qty


levels = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 5)), max_size=8)
batches = st.lists(st.tuples(levels, levels), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(batches=batches, depth=st.integers(1, 12), flush_every=st.integers(1, 4))
def test_a_client_applying_the_diffs_holds_exactly_the_top_depth(
    batches: list[tuple[list[Any], list[Any]]], depth: int, flush_every: int
) -> None:
    reference: tuple[dict[int, int], dict[int, int]] = ({}, {})
    mirror = BookMirror()
    mirror.reset([], [], 0)
    view = BookView(depth)
    view.load(mirror)
    client: tuple[dict[int, int], dict[int, int]] = ({}, {})
    for n, (bids, asks) in enumerate(batches, start=1):
        batch = MarketBatch(
            "SOL-USDC", U=n, u=n, E=0,
            bids=[Level(p, q, 1) for p, q in bids], asks=[Level(p, q, 1) for p, q in asks],
        )  # fmt: skip
        assert mirror.chains(batch)
        mirror.apply(batch)
        for side, changed in zip(reference, (bids, asks), strict=True):
            _apply(side, changed)
        if n % flush_every == 0 or n == len(batches):
            bid_changes, ask_changes = view.advance(mirror)
            _apply(client[0], bid_changes)
            _apply(client[1], ask_changes)
            assert client[0] == _top(reference[0], depth, True)
            assert client[1] == _top(reference[1], depth, False)
            assert view.u == n


def test_a_batch_that_does_not_chain_is_a_gap() -> None:
    mirror = BookMirror()
    mirror.reset([(100, 1)], [(101, 2)], 10)
    assert mirror.chains(MarketBatch("M", U=11, u=14, E=0))
    assert not mirror.chains(MarketBatch("M", U=13, u=14, E=0))
    assert mirror.best() == ((100, 1), (101, 2))


def test_checksum_worked_example_of_docs_websocket() -> None:
    fmt = Formatter(SPEC)
    bids = fmt.levels([(10_125, 500), (10_100, 2_000)])  # 101.25 x 0.5, 101.00 x 2
    asks = fmt.levels([(10_150, 1_000)])  # 101.50 x 1
    assert asks == [("101.500000", "1.000000000")]
    # asks low to high, then bids high to low; '.' removed, leading zeros stripped
    text = "101500000" + "1000000000" + "101250000" + "500000000" + "101000000" + "2000000000"
    assert checksum(bids, asks) == zlib.crc32(text.encode()) == 1_482_821_174


def test_checksum_covers_the_top_ten_levels_only() -> None:
    fmt = Formatter(SPEC)
    asks = fmt.levels([(10_000 + i, 1_000) for i in range(12)])
    assert checksum([], asks) == checksum([], asks[:10])
    assert checksum([], asks) != checksum([], asks[:9])


def test_a_removed_level_formats_as_zero() -> None:
    assert Formatter(SPEC).levels([(10_125, 0)]) == [("101.250000", "0")]


def test_conflation_sends_the_first_change_at_once_then_at_most_once_per_interval() -> None:
    clock = Conflator(100)
    assert clock.delay_ms(1_000) == 0
    clock.sent(1_000)
    assert clock.delay_ms(1_030) == 70
    assert clock.delay_ms(1_100) == 0
    assert clock.delay_ms(5_000) == 0
    every = Conflator(0)
    every.sent(1_000)
    assert every.delay_ms(1_000) == 0


def test_svm_numbers_are_written_digit_for_digit() -> None:
    from serve_app.ws import svm

    body = svm.book_message(Formatter(SPEC), "SOL-USDC", "update", 45, 7,
                            [(10_125, 500)], [(10_150, 0)], 1)  # fmt: skip
    assert b'"bids":[[101.250000,0.500000000]],"asks":[[101.500000,0]]' in body
    assert b'"sequence_number":45,"timestamp":7' in body
