"""Settlements (public): one on-chain settlement batch with its trades and attempts. The
operators' list and retry are in `admin.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from serve_app.gateway import settlements
from serve_app.gateway.rejects import UNKNOWN_SETTLEMENT
from serve_app.gateway.settlement_models import SettlementView
from serve_app.http.deps import Core

router = APIRouter(tags=["settlements"])
SettlementId = Annotated[int, Path(ge=1, le=settlements.MAX_SETTLEMENT_ID)]


@router.get(
    "/settlements/{settlement_id}", response_model=SettlementView, summary="A settlement",
    responses=UNKNOWN_SETTLEMENT,
)  # fmt: skip
async def get_settlement(settlement_id: SettlementId, core: Core) -> SettlementView:
    """Return an on-chain settlement: its status (`pending`, `submitted`, `confirmed`,
    `finalized`, `failed`), signature, slot, batch ids, trades (as on the public tape),
    every transaction sent (`attempts`), retries, fee and compute units. Public: it holds
    no account data."""
    return await settlements.settlement(core, settlement_id)
