"""The reconciliation's pure parts: when the ledger's reads agree, the shared report, and
how the gateway and `clob reconcile` show it."""

from __future__ import annotations

import asyncio

from actors.custody.reconcile import ReservesCache, ReservesReport, ledger_agrees
from actors.custody.reserves import AssetReserves
from serve_app.gateway.reserves import reserves_view
from serve_app.reconciliation import EXIT_DIFFERENCE, exit_code, table


def _report(on_chain: int, consistent: bool = True) -> ReservesReport:
    row = AssetReserves("USDC", on_chain, 900, 60, 10, 50, 30)
    return ReservesReport((row,), {"USDC": 6}, 4, consistent, 1, 1_700_000_000_000)


def test_the_ledger_agrees_only_with_its_own_credits_debits_and_conservation() -> None:
    ledger = {"USDC": {"available": 900, "locked": 60, "fees": 10, "credited": 1_000,
                       "debited": 30}}  # fmt: skip
    assert ledger_agrees(ledger, {"USDC": (1_000, 30)})
    assert not ledger_agrees(ledger, {"USDC": (1_050, 30)})  # a credit between the reads
    assert not ledger_agrees(ledger, {"USDC": (1_000, 30), "SOL": (5, 0)})
    torn = {"USDC": {**ledger["USDC"], "available": 880}}  # a trade half applied
    assert not ledger_agrees(torn, {"USDC": (1_000, 30)})


async def test_callers_share_one_gathering_and_a_young_report() -> None:
    gathered = 0
    release = asyncio.Event()

    async def gather() -> ReservesReport:
        nonlocal gathered
        gathered += 1
        await release.wait()
        return _report(1_050)

    cache = ReservesCache(gather)
    waiting = [asyncio.create_task(cache.get(5.0)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    reports = await asyncio.gather(*waiting)
    assert gathered == 1 and all(r is reports[0] for r in reports)
    assert await cache.get(5.0) is reports[0] and gathered == 1
    await cache.get(0.0)  # a fresh one asked for: gathered again
    assert gathered == 2


def test_the_view_shows_every_term_in_whole_units() -> None:
    view = reserves_view(_report(1_040))
    (usdc,) = view.assets
    assert (usdc.on_chain, usdc.ledger, usdc.expected) == ("0.001040", "0.000970", "0.001050")
    assert usdc.difference == "-0.000010" and not view.balanced and view.consistent


def test_clob_reconcile_exits_non_zero_on_a_difference_or_moving_reads() -> None:
    assert exit_code(_report(1_050)) == 0
    assert exit_code(_report(1_051)) == EXIT_DIFFERENCE
    assert exit_code(_report(1_050, consistent=False)) == EXIT_DIFFERENCE
    lines = table(_report(1_051))
    assert lines[0].split()[:3] == ["asset", "on", "chain"]
    assert lines[1].split() == ["USDC", "0.001051", "0.000970", "0.000050", "0.000030",
                                "0.000000", "0.001050", "0.000001"]  # fmt: skip
    assert lines[-1] == "DIFFERENCE in USDC"
    assert table(_report(1_050))[-1] == "balanced: 1 assets, 4 vaults"
