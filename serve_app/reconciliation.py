"""`clob reconcile`: the reserves check of a running exchange (docs/custody.md,
"Reconciliation").

It joins the running `clob up`'s Ray cluster as a driver, asks the chain actor
(`custody:chain`) for a fresh reconciliation, prints one row per asset in whole units and
exits non-zero (`EXIT_DIFFERENCE`) when any difference is not zero, or when the reads kept
moving under it (`consistent` false), so a script or a cron job can alert on it.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from actors.custody.actor import CHAIN_ACTOR
from actors.custody.reconcile import ReservesReport
from actors.infra.settings import Settings
from serve_app import units
from serve_app.launcher import LaunchError, read_state

EXIT_DIFFERENCE = 4
"""`clob reconcile` found a difference (or could not read the terms consistently)."""
TIMEOUT_S = 120.0
COLUMNS = ("asset", "on_chain", "ledger", "deposits_pending", "withdrawals_in_flight",
           "unsettled", "expected", "difference")  # fmt: skip
HEADERS = ("asset", "on chain", "ledger", "deposits pending", "withdrawals in flight",
           "unsettled", "expected", "difference")  # fmt: skip


def fetch(settings: Settings) -> ReservesReport:
    """Return a fresh reconciliation from the running exchange's chain actor.

    Raises:
        LaunchError: No `clob up` runs here, or it runs no custody actors.
    """
    import ray

    state = read_state(settings)
    if state is None:
        raise LaunchError("the exchange is not running (no `clob up` in this data directory)")
    ray.init(address=state.ray_address, namespace=settings.ray.namespace,
             logging_level=logging.ERROR, log_to_driver=False)  # fmt: skip
    try:
        try:
            actor: Any = ray.get_actor(CHAIN_ACTOR)
        except ValueError:
            raise LaunchError(f"the custody actors are not running (no {CHAIN_ACTOR})") from None
        return cast(ReservesReport, ray.get(actor.reserves.remote(0.0), timeout=TIMEOUT_S))
    finally:
        ray.shutdown()


def table(report: ReservesReport) -> list[str]:
    """Return the report as aligned text lines: a header, one row per asset, a verdict."""
    rows: list[tuple[str, ...]] = [HEADERS]
    for asset in report.assets:
        terms: dict[str, Any] = asset.as_dict()
        places = report.decimals.get(asset.asset, 0)
        rows.append(tuple(
            str(terms[c]) if c == "asset" else units.atoms_to_decimal(terms[c], places)
            for c in COLUMNS
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]  # fmt: skip
    return [*lines, verdict(report)]


def verdict(report: ReservesReport) -> str:
    """Return one line saying whether the vaults and the ledger agree."""
    unequal = [a.asset for a in report.assets if a.difference != 0]
    reads = "" if report.consistent else " (the terms moved while they were read: run it again)"
    if not unequal:
        return f"balanced: {len(report.assets)} assets, {report.vaults} vaults{reads}"
    return f"DIFFERENCE in {', '.join(unequal)}{reads}"


def exit_code(report: ReservesReport) -> int:
    """Return 0 when every asset balances and the reads agreed, else `EXIT_DIFFERENCE`."""
    return 0 if report.balanced and report.consistent else EXIT_DIFFERENCE
