"""The reconciliation's pure parts: when the ledger's reads agree, the shared report, and
how the gateway and `clob reconcile` show it."""

from __future__ import annotations

import asyncio

from actors.accounts import AccountId
from actors.custody.reconcile import (
    MAX_DIFFERING_SHOWN,
    Gathered,
    ReservesCache,
    ReservesReport,
    ledger_agrees,
    marks_agree,
    report_of,
)
from actors.custody.reserves import AssetReserves, VaultReserves
from serve_app.gateway.reserves import reserves_view
from serve_app.reconciliation import EXIT_DIFFERENCE, as_json, exit_code, table


def _report(on_chain: int, consistent: bool = True, vault_off: int = 0) -> ReservesReport:
    row = AssetReserves("USDC", on_chain, 900, 60, 10, 50, 30)
    vault = VaultReserves(AccountId(3), "USDC", "Vault3", 500 + vault_off, 520, 0, 0, 20)
    gathered = Gathered([row], [vault], {"USDC": 6}, 4, consistent)
    return report_of(gathered, 1, 1_700_000_000_000)


def test_the_ledger_agrees_only_with_its_own_credits_debits_and_conservation() -> None:
    ledger = {"USDC": {"available": 900, "locked": 60, "fees": 10, "credited": 1_000,
                       "debited": 30}}  # fmt: skip
    assert ledger_agrees(ledger, {"USDC": (1_000, 30)})
    assert not ledger_agrees(ledger, {"USDC": (1_050, 30)})  # a credit between the reads
    assert not ledger_agrees(ledger, {"USDC": (1_000, 30), "SOL": (5, 0)})
    torn = {"USDC": {**ledger["USDC"], "available": 880}}  # a trade half applied
    assert not ledger_agrees(torn, {"USDC": (1_000, 30)})


def test_the_marks_agree_only_when_shards_and_projection_reached_the_head() -> None:
    heads = {"SOL-USDC": (40, 40)}
    assert marks_agree([{"SOL-USDC": 40}, {"SOL-USDC": 40}], heads)
    assert not marks_agree([{"SOL-USDC": 40}, {"SOL-USDC": 39}], heads)  # a shard behind
    assert not marks_agree([{"SOL-USDC": 40}], {"SOL-USDC": (40, 38)})  # trades behind
    assert not marks_agree([{}], heads)  # a shard that never saw the market's journal


def test_a_report_counts_the_vaults_and_lists_the_largest_differences_first() -> None:
    row = AssetReserves("USDC", 0, 0, 0, 0, 0, 0)
    vaults = [VaultReserves(AccountId(i), "USDC", f"V{i}", i, 0, 0, 0, 0) for i in range(30)]
    report = report_of(Gathered([row], vaults, {"USDC": 6}, 30, True), 2, 0)
    assert (report.vaults_checked, report.vaults_differing) == (30, 29)
    assert len(report.differing) == MAX_DIFFERING_SHOWN and report.differing[0].on_chain == 29
    assert not report.balanced and report.attempts == 2


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
    assert (view.vaults_checked, view.vaults_differing, view.differing) == (1, 0, [])


def test_the_public_view_shows_a_differing_vault_without_its_account() -> None:
    view = reserves_view(_report(1_050, vault_off=-2))
    assert (view.vaults_differing, view.balanced) == (1, False)
    (vault,) = view.differing
    assert vault.model_dump() == {"asset": "USDC", "address": "Vault3", "on_chain": "0.000498",
                                  "expected": "0.000500", "difference": "-0.000002"}  # fmt: skip


def test_clob_reconcile_exits_non_zero_on_a_difference_or_moving_reads() -> None:
    assert exit_code(_report(1_050)) == 0
    assert exit_code(_report(1_051)) == EXIT_DIFFERENCE
    assert exit_code(_report(1_050, consistent=False)) == EXIT_DIFFERENCE
    lines = table(_report(1_051))
    assert lines[0].split()[:3] == ["asset", "on", "chain"]
    assert lines[1].split() == ["USDC", "0.001051", "0.000970", "0.000050", "0.000030",
                                "0.000000", "0.001050", "0.000001"]  # fmt: skip
    assert lines[-1] == "DIFFERENCE in USDC"
    assert table(_report(1_050))[-1] == "balanced: 1 assets, 4 vaults, 1 vaults checked"
    # A vault that differs while its asset balances: operators see its account and terms.
    lines = table(_report(1_050, vault_off=1))
    assert exit_code(_report(1_050, vault_off=1)) == EXIT_DIFFERENCE
    assert lines[-1] == "DIFFERENCE in 1 of 1 vaults checked"
    assert lines[-2].split() == ["3", "USDC", "Vault3", "0.000501", "0.000520", "0.000000",
                                 "0.000000", "0.000020", "0.000500", "0.000001"]  # fmt: skip
    assert as_json(_report(1_050, vault_off=1))["differing"][0]["account_id"] == 3
