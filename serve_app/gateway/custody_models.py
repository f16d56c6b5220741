"""Request and response bodies of the custody endpoints (withdrawal allowlist,
withdrawals, deposits). Amounts are decimal strings in whole units, like everywhere."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_app.gateway.models import MAX_JSON_SAFE_INT, PositiveAmount

Address = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="A Solana wallet address: a base58 32-byte public key.",
        examples=["9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"],
    ),
]
AssetSymbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,16}$", description="Asset symbol.")]
WithdrawalId = Annotated[int, Field(ge=1, le=MAX_JSON_SAFE_INT)]
WithdrawalState = Literal[
    "requested", "pending_confirmation", "debited", "sent", "confirmed", "failed", "cancelled"
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddressCreate(_Request):
    """A destination to allowlist."""

    address: Address
    label: str = Field(default="", max_length=128, description="Your label for it.")


class AddressView(BaseModel):
    """An allowlisted destination."""

    address: str
    label: str
    created_at: datetime
    active_from: datetime = Field(description="Usable from this time (the cooling-off).")


class AddressList(BaseModel):
    """Your withdrawal allowlist, oldest first."""

    addresses: list[AddressView]


class WithdrawalCreate(_Request):
    """A withdrawal to an allowlisted destination."""

    asset: AssetSymbol
    amount: PositiveAmount
    address: Address = Field(description="Destination wallet; must be on your allowlist.")
    client_request_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Your idempotency key: a retry with it answers the first request.",
    )


class WithdrawalConfirm(_Request):
    """The second step of a withdrawal above the threshold."""

    code: str = Field(min_length=1, max_length=128, description="The one-time code.")


class WithdrawalView(BaseModel):
    """A withdrawal and where it is."""

    withdrawal_id: int
    asset: str
    amount: str = Field(description="Decimal string in whole units.")
    address: str = Field(description="Destination wallet.")
    status: WithdrawalState
    client_request_id: str | None
    tx_signature: str | None = Field(description="The transaction's signature once sent.")
    error: str | None = Field(description="Why it failed or was cancelled.")
    created_at: datetime
    updated_at: datetime
    confirm_expires_at: datetime | None = Field(
        description="A pending second step must be confirmed before this time."
    )
    debited_at: datetime | None
    sent_at: datetime | None
    confirmed_at: datetime | None = Field(description="When it landed on chain.")
    refunded_at: datetime | None = Field(description="When a failed one was re-credited.")


class WithdrawalCreated(WithdrawalView):
    """A new withdrawal; `confirmation_code` only when it waits for the second step."""

    confirmation_code: str | None = Field(
        default=None,
        description="The one-time code of the second step (status pending_confirmation), "
        "shown this once only; POST it to /withdrawals/{id}/confirm.",
    )


class WithdrawalPage(BaseModel):
    """Your withdrawals, newest first."""

    withdrawals: list[WithdrawalView]
    next_cursor: str | None


class DepositView(BaseModel):
    """A deposit seen on chain."""

    deposit_id: int
    asset: str
    amount: str = Field(description="Decimal string in whole units.")
    address: str = Field(description="Your deposit address that received it.")
    tx_signature: str
    slot: int | None
    confirmations: int
    status: Literal["pending", "credited", "failed"]
    created_at: datetime
    credited_at: datetime | None


class DepositPage(BaseModel):
    """Your deposits, newest first."""

    deposits: list[DepositView]
    next_cursor: str | None


class DepositAddressView(BaseModel):
    """Where to send an asset to deposit it."""

    asset: str
    address: str = Field(
        description="Your deposit address for the asset: an SPL token account (your vault, "
        "owned by the exchange program). Send the asset's tokens to it with a plain SPL "
        "transfer; they are credited once the transfer is `confirmations` slots deep.",
        examples=["9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"],
    )
    mint: str = Field(description="The asset's SPL mint: send only tokens of this mint.")
