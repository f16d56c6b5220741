"""Response bodies of the settlement endpoints (docs/api.md, "Settlements")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from serve_app.gateway.models import PublicTrade, SettlementState


class SettlementAttempt(BaseModel):
    """One transaction sent for a settlement (a dropped one may still land)."""

    attempt: int = Field(description="1, 2, ... per settlement.")
    signature: str = Field(description="Transaction signature (base58).")
    status: Literal["sent", "landed", "expired", "error"]
    priority_fee_micro_lamports: int = Field(description="Compute-unit price, micro-lamports.")
    error: str | None = None
    sent_at: datetime


class SettlementSummary(BaseModel):
    """A settlement without its trades and attempts (the admin list)."""

    settlement_id: int
    market: str
    status: SettlementState
    signature: str | None = Field(
        description="The landed transaction's signature (before it lands: the latest sent)."
    )
    slot: int | None = Field(description="Slot it landed in.")
    batch_id: int | None = Field(
        description="First on-chain batch id (the program applies each once)."
    )
    batch_count: int | None = Field(description="Settle instructions (netted: 1).")
    netted: bool | None = Field(description="Each vault moved once by its net change.")
    trade_count: int
    retries: int = Field(description="Failed submissions so far.")
    fee_lamports: int | None = Field(description="Fee paid by the landed transaction.")
    compute_units: int | None = Field(description="Compute units it consumed.")
    tx_bytes: int | None = Field(description="Size of the signed transaction (at most 1,232).")
    created_at: datetime
    submitted_at: datetime | None
    confirmed_at: datetime | None
    finalized_at: datetime | None
    failed_at: datetime | None
    last_error: str | None


class SettlementView(SettlementSummary):
    """A settlement with its trades (as on the public tape) and every attempt."""

    trades: list[PublicTrade]
    attempts: list[SettlementAttempt]


class SettlementPage(BaseModel):
    """A page of settlements, newest first."""

    settlements: list[SettlementSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
