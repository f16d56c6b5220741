"""The public reserves check (`GET /api/v1/reserves`): the chain actor's reconciliation
(`actors/custody/reconcile.py`) as a view in whole units, cached.

Two caches keep the endpoint from loading the chain: Redis holds the view for
`RESERVES_CACHE_TTL_S` (shared by every replica), and the chain actor answers a report up
to `RESERVES_MAX_AGE_S` old and runs one gathering at a time however many ask. Redis is a
cache: when it fails, the actor still bounds the work.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from ray.exceptions import RayTaskError

from actors.custody.actor import CHAIN_ACTOR
from actors.custody.reconcile import ReservesReport
from actors.custody.reserves import AssetReserves, VaultReserves
from serve_app import units
from serve_app.gateway.core import GatewayCore, unavailable

RESERVES_CACHE_KEY = "reserves"
RESERVES_CACHE_TTL_S = 5
RESERVES_MAX_AGE_S = 5.0


def _amount(description: str) -> Any:
    return Field(description=f"{description}; a decimal string in whole units.")


class AssetReservesView(BaseModel):
    """One asset's terms of the formula `on_chain = ledger + deposits_pending +
    withdrawals_in_flight - unsettled` (docs/custody.md, "Reconciliation")."""

    asset: str
    on_chain: str = _amount("What the asset's vaults (users' and the fee vault) hold on chain")
    available: str = _amount("The ledger's available balances")
    locked: str = _amount("The ledger's locked balances (open orders)")
    fees: str = _amount("The ledger's fee balances")
    ledger: str = _amount("available + locked + fees")
    deposits_pending: str = _amount("Deposits on chain not credited yet (below the depth)")
    withdrawals_in_flight: str = _amount("Withdrawals debited that have not left a vault yet")
    unsettled: str = _amount(
        "Trades not yet settled on chain, net over the asset's vaults (0 by construction; "
        "per vault it is not)"
    )
    expected: str = _amount("What the vaults must hold by the formula")
    difference: str = _amount("on_chain - expected: 0 when they agree")


class VaultDifferenceView(BaseModel):
    """A vault whose holdings on chain differ from what the ledger says it must hold.

    The account and the terms behind `expected` are left out of the public view (they are
    one account's ledger); `clob reconcile` shows them to operators."""

    asset: str
    address: str = Field(description="The vault's token account (base58).")
    on_chain: str = _amount("What the vault holds on chain")
    expected: str = _amount(
        "What it must hold: the account's ledger balance (the fee balance for the fee "
        "vault) + its deposits pending + its withdrawals in flight - its unsettled trades"
    )
    difference: str = _amount("on_chain - expected")


class ReservesView(BaseModel):
    """The vaults on chain against the ledger, per asset and per vault."""

    as_of: datetime = Field(description="When the terms were read.")
    consistent: bool = Field(
        description="The reads agreed (nothing moved between them), so a difference is real; "
        "false: something moved during every attempt, read again."
    )
    balanced: bool = Field(description="Every asset's difference is zero.")
    vaults: int = Field(description="Token accounts read on chain.")
    assets: list[AssetReservesView]
    vaults_checked: int = Field(
        description="Vaults compared one by one (each user's vault of each asset, and "
        "each asset's fee vault)."
    )
    vaults_differing: int = Field(description="Vaults whose difference is not zero.")
    differing: list[VaultDifferenceView] = Field(
        description="The first 20 vaults that differ, the largest difference first."
    )


def asset_view(row: AssetReserves, decimals: int) -> AssetReservesView:
    """Return one asset's terms in whole units."""
    terms = {k: v for k, v in row.as_dict().items() if k != "asset"}
    return AssetReservesView(
        asset=row.asset,
        **{k: units.atoms_to_decimal(int(v), decimals) for k, v in terms.items()},
    )


def vault_view(row: VaultReserves, decimals: int) -> VaultDifferenceView:
    """Return one differing vault in whole units."""
    return VaultDifferenceView(
        asset=row.asset, address=row.address,
        on_chain=units.atoms_to_decimal(row.on_chain, decimals),
        expected=units.atoms_to_decimal(row.expected, decimals),
        difference=units.atoms_to_decimal(row.difference, decimals),
    )  # fmt: skip


def reserves_view(report: ReservesReport) -> ReservesView:
    """Return a report as the API shows it."""
    return ReservesView(
        as_of=datetime.fromtimestamp(report.as_of_ms / 1000, UTC),
        consistent=report.consistent,
        balanced=report.balanced,
        vaults=report.vaults,
        assets=[asset_view(r, report.decimals.get(r.asset, 0)) for r in report.assets],
        vaults_checked=report.vaults_checked,
        vaults_differing=report.vaults_differing,
        differing=[vault_view(v, report.decimals.get(v.asset, 0)) for v in report.differing],
    )


async def report(core: GatewayCore, max_age_s: float) -> ReservesReport:
    """Ask the chain actor for a reconciliation at most `max_age_s` old.

    Raises:
        ApiError: 503 `unavailable` when the chain actor, the chain or a shard is.
    """
    try:
        found: ReservesReport = await core.call_again_once(CHAIN_ACTOR, "reserves", max_age_s)
    except RayTaskError as exc:  # the chain or a shard did not answer the gathering
        raise unavailable(CHAIN_ACTOR, exc.cause) from None
    return found


async def cached_view(core: GatewayCore) -> ReservesView:
    """Return the public view, from the cache when it holds one."""
    redis = await core.redis()
    with contextlib.suppress(Exception):  # Redis is a cache: on failure, ask the actor
        hit = await redis.get(RESERVES_CACHE_KEY)
        if hit is not None:
            return ReservesView.model_validate_json(hit)
    view = reserves_view(await report(core, RESERVES_MAX_AGE_S))
    with contextlib.suppress(Exception):  # Redis is a cache
        await redis.set(RESERVES_CACHE_KEY, view.model_dump_json(), ex=RESERVES_CACHE_TTL_S)
    return view
