"""Custody endpoints: your withdrawal allowlist, withdrawals and deposits.

Writes need the key's `withdraw` scope, lists its `read` scope. Everything runs as
`clob_api` acting for the caller's account: another account's address or withdrawal id
answers 404 like one that does not exist (docs/api.md, "Custody"). The work is in
`serve_app.gateway.custody`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from actors.custody import deposits, records
from serve_app import units
from serve_app.gateway import custody, db
from serve_app.gateway.custody_models import (
    AddressCreate,
    AddressList,
    AddressView,
    AssetSymbol,
    DepositAddressView,
    DepositPage,
    DepositView,
    WithdrawalConfirm,
    WithdrawalCreate,
    WithdrawalCreated,
    WithdrawalId,
    WithdrawalPage,
    WithdrawalState,
    WithdrawalView,
)
from serve_app.gateway.rejects import UNAVAILABLE, api_error
from serve_app.http.deps import Core, Reader, Withdrawer

router = APIRouter(tags=["custody"])

_UNKNOWN_WITHDRAWAL: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such withdrawal of yours (`unknown_withdrawal`)"}
}
_Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the last page.")
]
_Limit = Annotated[int, Query(ge=1, le=500)]
_IdPath = Annotated[WithdrawalId, Path(description="The withdrawal's id.")]


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    _, key = db.decode_cursor(cursor)
    if not key.isdigit() or len(key) > 19:
        raise api_error("invalid_cursor", "the cursor is not one this API returned")
    return int(key)


# -- the allowlist -------------------------------------------------------------------------


@router.post(
    "/withdrawal-addresses", response_model=AddressView, status_code=201,
    summary="Allowlist a withdrawal address",
)  # fmt: skip
async def add_address(body: AddressCreate, core: Core, caller: Withdrawer) -> AddressView:
    """Add a destination to your allowlist; it is usable after the cooling-off
    (`active_from`). Adding one already listed changes nothing and answers it."""
    address = custody.check_address(body.address)
    cooling = core.args.custody.policy().cooling_off_s
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        added = await records.add_address(conn, caller.account_id, address, body.label, cooling)
    return AddressView.model_validate(added, from_attributes=True)


@router.get("/withdrawal-addresses", response_model=AddressList, summary="Your allowlist")
async def list_addresses(core: Core, caller: Reader) -> AddressList:
    """Return your allowlisted withdrawal addresses, oldest first."""
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        rows = await records.list_addresses(conn)
    return AddressList(
        addresses=[AddressView.model_validate(r, from_attributes=True) for r in rows]
    )


@router.delete(
    "/withdrawal-addresses/{address}", response_model=AddressView,
    summary="Remove an allowlisted address",
    responses={404: {"description": "Not on your allowlist (`unknown_address`)"}},
)  # fmt: skip
async def remove_address(
    address: Annotated[str, Path(max_length=64, description="The address.")],
    core: Core,
    caller: Withdrawer,
) -> AddressView:
    """Remove a destination from your allowlist (withdrawals already made are kept);
    answers the entry removed."""
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        found = await records.find_address(conn, address)
        if found is not None:
            await records.remove_address(conn, address)
    if found is None:
        raise api_error("unknown_address", "not on your allowlist", address=address)
    return AddressView.model_validate(found, from_attributes=True)


# -- withdrawals ---------------------------------------------------------------------------


@router.post(
    "/withdrawals", response_model=WithdrawalCreated, status_code=201,
    summary="Request a withdrawal",
    responses={404: {"description": "Unknown asset (`unknown_asset`)"}, **UNAVAILABLE},
)  # fmt: skip
async def request_withdrawal(
    body: WithdrawalCreate, core: Core, caller: Withdrawer
) -> WithdrawalCreated:
    """Withdraw to an allowlisted address: the policy is applied, then your available
    balance is debited at once (status `debited`), or, above the asset's threshold, the
    request waits for its second step (status `pending_confirmation`, with a one-time
    `confirmation_code`). The transfer itself is sent by the custody service."""
    return await custody.request(core, caller.account_id, body)


@router.post(
    "/withdrawals/{withdrawal_id}/confirm", response_model=WithdrawalView,
    summary="Confirm a withdrawal (second step)",
    responses={**_UNKNOWN_WITHDRAWAL, 409: {"description": "Not waiting for it "
               "(`withdrawal_not_pending`), or its time ran out (`confirmation_expired`)"},
               **UNAVAILABLE},
)  # fmt: skip
async def confirm_withdrawal(
    withdrawal_id: _IdPath, body: WithdrawalConfirm, core: Core, caller: Withdrawer
) -> WithdrawalView:
    """Confirm a `pending_confirmation` withdrawal with its one-time code: it is then
    debited like any other."""
    return await custody.confirm(core, caller.account_id, withdrawal_id, body)


@router.get("/withdrawals", response_model=WithdrawalPage, summary="Your withdrawals")
async def list_withdrawals(
    core: Core,
    caller: Reader,
    status: Annotated[WithdrawalState | None, Query(description="Only this status.")] = None,
    limit: _Limit = 100,
    cursor: _Cursor = None,
) -> WithdrawalPage:
    """Return your withdrawals, newest first."""
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        rows = await records.page(conn, limit, _before(cursor), status)
    views = [await custody.view(core, w) for w in rows]
    last = rows[-1] if len(rows) == limit else None
    return WithdrawalPage(
        withdrawals=views,
        next_cursor=None if last is None else db.encode_cursor(last.created_at, last.withdrawal_id),
    )


@router.get(
    "/withdrawals/{withdrawal_id}", response_model=WithdrawalView, summary="One withdrawal",
    responses=_UNKNOWN_WITHDRAWAL,
)  # fmt: skip
async def get_withdrawal(withdrawal_id: _IdPath, core: Core, caller: Reader) -> WithdrawalView:
    """Return one of your withdrawals."""
    async with db.acting_as(await core.pool(), caller.account_id, projection=None) as conn:
        found = await records.get(conn, withdrawal_id)
    if found is None:
        raise api_error("unknown_withdrawal", "no such withdrawal", withdrawal_id=withdrawal_id)
    return await custody.view(core, found)


# -- deposits ------------------------------------------------------------------------------


@router.get("/deposits", response_model=DepositPage, summary="Your deposits")
async def list_deposits(
    core: Core, caller: Reader, limit: _Limit = 100, cursor: _Cursor = None
) -> DepositPage:
    """Return the deposits seen to your deposit addresses, newest first, with their
    status (`pending` until the confirmation depth, then `credited`) and confirmations."""
    pool = await core.pool()
    async with db.acting_as(pool, caller.account_id, projection=None) as conn:
        rows = await deposits.page(conn, limit, _before(cursor))
    views = []
    for d in rows:
        decimals = await core.registry.decimals(pool, d.asset)
        views.append(DepositView(
            deposit_id=d.deposit_id, asset=d.asset,
            amount=units.atoms_to_decimal(d.amount_atoms, decimals), address=d.address,
            tx_signature=d.tx_signature, slot=d.slot, confirmations=d.confirmations,
            status=d.status, created_at=d.created_at, credited_at=d.credited_at,
        ))  # fmt: skip
    last = rows[-1] if len(rows) == limit else None
    return DepositPage(
        deposits=views,
        next_cursor=None if last is None else db.encode_cursor(last.created_at, last.deposit_id),
    )


_CHAIN_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "The chain or the custody service is unavailable; retry"}
}


@router.get(
    "/deposit-address", response_model=DepositAddressView, summary="Your deposit address",
    responses={404: {"description": "Unknown asset (`unknown_asset`)"},
               409: {"description": "The asset has no mint on chain (`asset_not_on_chain`)"},
               **_CHAIN_UNAVAILABLE},
)  # fmt: skip
async def get_deposit_address(
    core: Core,
    caller: Reader,
    asset: Annotated[AssetSymbol, Query(description="The asset to deposit, e.g. `USDC`.")],
) -> DepositAddressView:
    """Return your deposit address for an asset (created on chain the first time): send
    the asset's tokens there; each transfer shows in `GET /deposits`, `pending` with its
    confirmations, then `credited` to your available balance once."""
    return await custody.deposit_address(core, caller.account_id, asset)
