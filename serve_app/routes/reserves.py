"""The public reserves check: the vaults on chain against the ledger, per asset
(docs/custody.md, "Reconciliation"; the work is in `serve_app.gateway.reserves`)."""

from __future__ import annotations

from fastapi import APIRouter

from serve_app.gateway import reserves
from serve_app.gateway.rejects import UNAVAILABLE
from serve_app.gateway.reserves import ReservesView
from serve_app.http.deps import Core

router = APIRouter(tags=["custody"])


@router.get(
    "/reserves", response_model=ReservesView, responses=UNAVAILABLE,
    summary="Reserves: the vaults on chain against the ledger",
)  # fmt: skip
async def get_reserves(core: Core) -> ReservesView:
    """Compare, per asset, what the exchange's vaults hold on chain with what the ledger
    owes (available + locked + fees), allowing for deposits not yet credited, withdrawals
    not yet out of a vault and trades not yet settled; show every term and the difference.
    Public, no key needed; the answer may be up to a few seconds old (`as_of`)."""
    return await reserves.cached_view(core)
