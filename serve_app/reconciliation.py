"""`clob reconcile`: the reserves check of a running exchange (docs/custody.md,
"Reconciliation").

It joins the running `clob up`'s Ray cluster as a driver, asks the chain actor
(`custody:chain`) for a fresh reconciliation, prints one row per asset in whole units,
then the vaults that differ (with the account and every term: operators see what the
public endpoint leaves out), and exits non-zero (`EXIT_DIFFERENCE`) when any difference
is not zero, or when the reads kept moving under it (`consistent` false), so a script or
a cron job can alert on it.
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
VAULT_COLUMNS = ("account_id", "asset", "address", "on_chain", "ledger", "deposits_pending",
                 "withdrawals_in_flight", "unsettled", "expected", "difference")  # fmt: skip
VAULT_HEADERS = ("account", "asset", "vault", "on chain", "ledger", "deposits pending",
                 "withdrawals in flight", "unsettled", "expected", "difference")  # fmt: skip
_TEXT = frozenset({"account_id", "asset", "address"})


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


def _cells(terms: dict[str, Any], columns: tuple[str, ...], places: int) -> tuple[str, ...]:
    return tuple(
        ("fees" if terms[c] is None else str(terms[c])) if c in _TEXT
        else units.atoms_to_decimal(terms[c], places)
        for c in columns
    )  # fmt: skip


def _aligned(rows: list[tuple[str, ...]], left: int) -> list[str]:
    """Align columns: the first `left` to the left, the amounts to the right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]  # fmt: skip


def table(report: ReservesReport) -> list[str]:
    """Return the report as aligned text lines: a header, one row per asset, the vaults
    that differ (if any, account `fees` for a fee vault), a verdict."""
    rows = [HEADERS] + [
        _cells(a.as_dict(), COLUMNS, report.decimals.get(a.asset, 0)) for a in report.assets
    ]
    lines = _aligned(rows, 1)
    if report.differing:
        shown = len(report.differing)
        lines += ["", f"vaults that differ ({shown} of {report.vaults_differing}):"]
        lines += _aligned([VAULT_HEADERS] + [
            _cells(v.as_dict(), VAULT_COLUMNS, report.decimals.get(v.asset, 0))
            for v in report.differing
        ], 3)  # fmt: skip
    return [*lines, verdict(report)]


def as_json(report: ReservesReport) -> dict[str, Any]:
    """Return the report as `clob reconcile --json` prints it (atoms)."""
    return {"consistent": report.consistent, "balanced": report.balanced,
            "vaults": report.vaults, "assets": [a.as_dict() for a in report.assets],
            "vaults_checked": report.vaults_checked,
            "vaults_differing": report.vaults_differing,
            "differing": [v.as_dict() for v in report.differing]}  # fmt: skip


def verdict(report: ReservesReport) -> str:
    """Return one line saying whether the vaults and the ledger agree."""
    unequal = [a.asset for a in report.assets if a.difference != 0]
    reads = "" if report.consistent else " (the terms moved while they were read: run it again)"
    checked = f"{report.vaults_checked} vaults checked"
    if not unequal and not report.vaults_differing:
        return f"balanced: {len(report.assets)} assets, {report.vaults} vaults, {checked}{reads}"
    parts = [f"in {', '.join(unequal)}"] if unequal else []
    if report.vaults_differing:
        parts.append(f"in {report.vaults_differing} of {checked}")
    return f"DIFFERENCE {' and '.join(parts)}{reads}"


def exit_code(report: ReservesReport) -> int:
    """Return 0 when every asset balances and the reads agreed, else `EXIT_DIFFERENCE`."""
    return 0 if report.balanced and report.consistent else EXIT_DIFFERENCE
