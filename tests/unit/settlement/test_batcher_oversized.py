"""The batcher's pass over in-memory fakes when a settlement's transaction would exceed
1,232 bytes: it is never recorded or sent; the settlement is cut in two (down to single
trades) while the other settlements go on, and a single trade that cannot fit fails with
the usual alert."""

from __future__ import annotations

import logging

import pytest
from batcher_fakes import VALID_FOR, make, passes, run, trade

from actors.settlement.tx import MAX_TX_BYTES


@pytest.mark.parametrize("flagged", [True, False], ids=["oversized", "prepared-too-large"])
def test_an_oversized_settlement_is_cut_until_it_fits_and_the_others_go_on(
    flagged: bool,
) -> None:
    # Flagged: the chain port measured it (`Oversized`); else it signed it anyway and the
    # batcher's own check must catch it. The fake store asserts the records' CHECK.
    batcher, store, chain, _, _, alerts = make(max_trades=4, interval_s=60.0)
    chain.bytes_per_vault, chain.flag_oversized = 40, flagged
    # Trades 1-4 among 8 accounts: 17 vaults, 1,280 bytes; trades 5-8: 5 vaults.
    store.trades = [trade(s, maker=10 * s, taker=10 * s + 1) for s in range(1, 5)]
    store.trades += [trade(s) for s in range(5, 9)]

    async def go() -> None:
        await passes(batcher)  # both created; the first cut, the second sent
        assert [store.trade_ids[i] for i in sorted(store.jobs)] == [[1, 2], [5, 6, 7, 8], [3, 4]]
        assert [j.status for _, j in sorted(store.jobs.items())] == [
            "pending", "submitted", "pending"]  # fmt: skip
        assert store.jobs[3].batch_id > store.jobs[2].batch_id and not store.rows[1]
        await passes(batcher)
        chain.deepen("finalized")
        await passes(batcher, 2)

    run(go())
    assert {j.status for j in store.jobs.values()} == {"finalized"} and not alerts
    assert sorted(t for ids in store.trade_ids.values() for t in ids) == list(range(1, 9))
    assert batcher.stats.oversized == 1 and batcher.stats.cuts == 1
    assert batcher.stats.failures == 0 and len(chain.sent) == 3


def test_a_single_trade_that_cannot_fit_fails_with_an_alert(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batcher, store, chain, publisher, _, alerts = make()
    chain.bytes_per_vault = 200  # 5 vaults: 1,600 bytes
    store.trades = [trade(1)]

    with caplog.at_level(logging.ERROR, logger="actors.settlement.batcher"):
        run(passes(batcher, 3))
    assert store.jobs[1].status == "failed" and alerts == [1] and not chain.sent
    error = f"oversized: 1600 bytes, over {MAX_TX_BYTES}"
    assert store.fields[1]["last_error"] == error and not store.rows[1]
    assert [c[1] for c in publisher.changes] == ["failed"]
    assert any("a bug" in r.getMessage() for r in caplog.records)


def test_a_rebuild_that_no_longer_fits_is_a_counted_failure_not_a_send() -> None:
    # A submitted settlement is not cut, nor given up at once (it has attempts): its
    # rebuild counts as a failed submission, retried with the usual backoff.
    batcher, store, chain, _, _, alerts = make()
    store.trades = [trade(1)]
    chain.drop = 1

    async def go() -> None:
        await passes(batcher, 2)  # created; sent, dropped
        chain.height += VALID_FOR + 1  # expired unseen: rebuilt, now too large
        chain.bytes_per_vault = 200
        await passes(batcher)

    run(go())
    job = store.jobs[1]
    assert job.status == "submitted" and job.retries == 1 and len(store.rows[1]) == 1
    assert store.fields[1]["last_error"].startswith("oversized") and not alerts
    assert len(store.jobs) == 1 and len(chain.sent) == 1
