"""The batcher's pass over in-memory fakes of its ports: batches are created once, sent,
re-sent, rebuilt, retried with a doubled fee after 2, 4 and 8 s, given up after the third
retry, and confirmed and finalized, with each change published; a new batcher over the
same records resumes where the old one stopped."""

from __future__ import annotations

import pytest
from batcher_fakes import MARKET, VALID_FOR, make, passes, run, trade

from actors.settlement.monitor import Seen


def test_a_batch_is_created_sent_confirmed_and_finalized() -> None:
    batcher, store, chain, publisher, _, _ = make(interval_s=60.0)
    store.trades = [trade(1), trade(2), trade(3)]

    async def go() -> None:
        await passes(batcher)
        await batcher.flush()
        await passes(batcher)
        (job,) = store.jobs.values()
        assert job.trade_count == 3 and job.status == "submitted" and store.mark == 3
        chain.deepen("confirmed")
        await passes(batcher)
        assert store.jobs[1].status == "confirmed"
        chain.deepen("finalized")
        await passes(batcher)
        assert store.jobs[1].status == "finalized"

    run(go())
    assert [c[1] for c in publisher.changes] == ["submitted", "confirmed", "finalized"]
    assert publisher.changes[0][2] == {1: [1, 2, 3], 2: [1, 2, 3]}
    assert len(chain.sent) == 1 and store.fields[1]["fee_lamports"] == 5_000 + 20


def test_a_dropped_transaction_is_resent_then_rebuilt_without_counting() -> None:
    batcher, store, chain, _, clock, _ = make()
    store.trades = [trade(1)]
    chain.drop = 3

    async def go() -> None:
        await passes(batcher, 2)  # created; sent (dropped)
        await passes(batcher)  # not a second yet: nothing
        assert len(chain.sent) == 1
        clock.now += 1.0
        await passes(batcher)  # resent, same bytes (dropped again)
        assert chain.sent == [b"sig1-1", b"sig1-1"]
        chain.height += VALID_FOR + 1  # the blockhash expired
        await passes(batcher)  # rebuilt: a new attempt (dropped)
        clock.now += 1.0
        await passes(batcher)  # resent: lands
        chain.deepen("confirmed")
        await passes(batcher)

    run(go())
    assert chain.sent == [b"sig1-1", b"sig1-1", b"sig1-2", b"sig1-2"]
    assert store.jobs[1].status == "confirmed" and store.jobs[1].retries == 0
    assert batcher.stats.failures == 0 and batcher.stats.rebuilt == 1


def test_failures_are_retried_after_2_4_8_s_with_a_doubled_fee_then_given_up() -> None:
    batcher, store, chain, publisher, clock, alerts = make(base_fee=1_000)
    store.trades = [trade(1)]
    chain.land_error = ["SomeError"] * 4

    async def go() -> None:
        await passes(batcher, 2)
        for pause in (2.0, 4.0, 8.0):
            await passes(batcher)  # the landed failure is counted
            job = store.jobs[1]
            assert job.next_try_at == pytest.approx(clock.now + pause)
            clock.now += pause - 0.5
            await passes(batcher)
            assert chain.prepared == job.retries  # not yet
            clock.now += 0.5
            await passes(batcher)  # the retry goes
        chain.height += VALID_FOR + 1  # nothing can land any more
        await passes(batcher)

    run(go())
    assert chain.fees == [1_000, 2_000, 4_000, 8_000]
    assert store.jobs[1].status == "failed" and alerts == [1]
    assert publisher.changes[-1][1] == "failed"
    assert all(row.status == "error" for row in store.rows[1])


def test_a_late_landing_of_an_earlier_attempt_wins() -> None:
    batcher, store, chain, _, clock, _ = make()
    store.trades = [trade(1)]
    chain.send_errors = 1  # the node errs, yet the transaction got through

    async def go() -> None:
        await passes(batcher, 2)
        assert store.jobs[1].retries == 1 and store.rows[1][0].status == "error"
        chain.seen["sig1-1"] = Seen(9, "confirmed")  # it landed after all
        clock.now += 2.0
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "confirmed" and chain.prepared == 1


def test_a_blocked_simulation_waits_uncounted() -> None:
    batcher, store, chain, _, clock, alerts = make()
    store.trades = [trade(1)]
    chain.refuse = "InsufficientVaultBalance"

    async def go() -> None:
        await passes(batcher, 10)  # simulated once: the next is 0.1 s away
        assert store.jobs[1].status == "pending" and store.jobs[1].retries == 0
        for pause in (0.1, 0.2, 0.4):  # then after a pause that doubles
            clock.now += pause - 0.01
            await passes(batcher)
            clock.now += 0.01
            await passes(batcher)
        chain.refuse = None
        clock.now += 0.8
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "submitted" and batcher.stats.blocked == 4 and not alerts


def test_a_batch_blocked_too_long_is_cut_until_it_can_pay() -> None:
    batcher, store, chain, _, clock, _ = make(interval_s=60.0, cut_after_s=3.0)
    store.trades = [trade(s) for s in range(1, 5)]
    chain.refuse = "InsufficientVaultBalance"

    async def go() -> None:
        await passes(batcher)
        await batcher.flush()
        await passes(batcher)  # blocked since now
        clock.now += 2.9
        await passes(batcher)
        assert len(store.jobs) == 1  # not yet
        clock.now += 0.2
        await passes(batcher)  # cut: 2 + 2
        assert [store.trade_ids[i] for i in sorted(store.jobs)] == [[1, 2], [3, 4]]
        await passes(batcher)  # both wait from now
        clock.now += 3.1
        await passes(batcher)  # each cut again: one trade each
        chain.refuse = None
        await passes(batcher, 2)
        chain.deepen("finalized")
        await passes(batcher, 2)

    run(go())
    assert sorted(t for ids in store.trade_ids.values() for t in ids) == [1, 2, 3, 4]
    assert len(store.jobs) == 4 and batcher.stats.cuts == 3
    assert {j.status for j in store.jobs.values()} == {"finalized"}
    assert batcher.stats.failures == 0


def test_a_never_sent_settlement_counts_its_failures_and_is_given_up_after_the_last() -> None:
    # A simulation refused for good (or an RPC error before the send) leaves the settlement
    # pending: its failures are counted as a sent one's are, with the same backoff.
    batcher, store, chain, publisher, clock, alerts = make()
    store.trades = [trade(1)]
    chain.refuse = "InvalidVault"

    async def go() -> None:
        await passes(batcher, 3)  # created, refused: failure 1; then within its backoff
        assert store.jobs[1].status == "pending" and store.jobs[1].retries == 1
        assert store.jobs[1].next_try_at == clock.now + 2.0
        for pause in (2.0, 4.0, 8.0):
            clock.now += pause
            await passes(batcher, 2)

    run(go())
    assert store.jobs[1].status == "failed" and alerts == [1] and not chain.sent
    assert batcher.stats.failures == 3 and batcher.stats.failed == 1
    assert store.fields[1]["last_error"] == "simulation: InvalidVault"
    assert [c[1] for c in publisher.changes] == ["failed"]


def test_an_rpc_error_before_the_first_send_is_retried_with_a_doubled_fee() -> None:
    batcher, store, chain, _, clock, _ = make()
    store.trades = [trade(1)]
    chain.prepare_errors = 1

    async def go() -> None:
        await passes(batcher, 2)
        assert store.jobs[1].status == "pending" and store.jobs[1].retries == 1
        clock.now += 2.0
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "submitted" and chain.fees == [2_000]


def test_at_most_max_in_flight_are_submitted() -> None:
    batcher, store, chain, _, _, _ = make(max_trades=1, max_in_flight=2)
    store.trades = [trade(s) for s in range(1, 6)]
    chain.drop = 100

    async def go() -> None:
        await passes(batcher, 3)

    run(go())
    statuses = [j.status for j in sorted(store.jobs.values(), key=lambda j: j.batch_id)]
    assert statuses == ["submitted", "submitted", "pending", "pending", "pending"]


def test_a_new_batcher_resumes_from_the_records() -> None:
    batcher, store, chain, _, _, _ = make(max_trades=2, interval_s=60.0)
    store.trades = [trade(s) for s in range(1, 4)]
    chain.drop = 1

    async def go() -> None:
        await passes(batcher, 1)  # batch 1 (trades 1-2) created; trade 3 in the open batch
        assert store.mark == 2 and len(store.jobs) == 1
        await passes(batcher, 1)  # batch 1 sent (dropped)
        # A restart: the open batch was in memory only; its trade is read again.
        again, *_ = make(store, chain, max_trades=2, interval_s=60.0)
        await again.run_pass([MARKET])  # re-sends batch 1's bytes at once (it lands)
        assert chain.sent == [b"sig1-1", b"sig1-1"]
        await again.flush()  # closes trade 3's batch
        await passes(again, 2)
        chain.deepen("finalized")
        await passes(again, 2)

    run(go())
    assert sorted(t for ids in store.trade_ids.values() for t in ids) == [1, 2, 3]
    assert {j.status for j in store.jobs.values()} == {"finalized"}
    assert store.floor_raised == [0, 0]


def test_a_blockhash_stale_at_the_simulation_is_no_failure() -> None:
    batcher, store, chain, _, _, _ = make()
    store.trades = [trade(1)]
    chain.refuse = "TransactionErrorFieldless.BlockhashNotFound"

    async def go() -> None:
        await passes(batcher, 3)
        assert store.jobs[1].retries == 0 and batcher.stats.failures == 0
        chain.refuse = None
        await passes(batcher)

    run(go())
    assert store.jobs[1].status == "submitted"
