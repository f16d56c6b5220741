"""The custody endpoints' work: the allowlist, withdrawal requests with their policy and
debit, the second step, and the lists.

A request is recorded first (`requested`, under a per-account lock so that the daily
limit sees every other request), then debited by its ledger shard with the reference
`withdrawal:<id>` and recorded `debited` (`actors.custody.flows`). A debit the ledger
refuses (funds short) deletes the row: the request changed nothing. A request above the
asset's threshold is held (`pending_confirmation`, nothing debited) until its one-time
code comes back; only the code's SHA-256 is stored. The user's steps run as `clob_api`
acting for the caller (row level security: another account's ids are unknown here), the
ledger's step as `clob_system`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
from ray.exceptions import RayTaskError
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.custody import flows, policy, records
from actors.custody.actor import CHAIN_ACTOR
from actors.custody.records import Withdrawal
from actors.custody.withdrawals import COUNTED_STATES, WithdrawalStatus
from actors.ledger.rules import InsufficientBalanceError
from serve_app import units
from serve_app.errors import ApiError
from serve_app.gateway import db
from serve_app.gateway.core import GatewayCore, unavailable
from serve_app.gateway.custody_models import (
    DepositAddressView,
    WithdrawalConfirm,
    WithdrawalCreate,
    WithdrawalCreated,
    WithdrawalView,
)
from serve_app.gateway.rejects import api_error


def check_address(text: str, field: str = "address") -> str:
    """Return a wallet address in its canonical base58 form.

    Raises:
        ApiError: 422 `invalid_address` unless it is a base58 32-byte public key.
    """
    try:
        key = Pubkey.from_string(text)
    except ValueError:
        raise api_error(
            "invalid_address", f"{field} is not a base58 32-byte public key", field=field
        ) from None
    if str(key) != text:  # e.g. leading zeros spelled otherwise: one spelling per key
        raise api_error("invalid_address", f"{field} is not in canonical base58", field=field)
    return text


def ledger(core: GatewayCore) -> flows.ShardLedger:
    """Return the ledger port over the replica's shard calls."""
    return flows.ShardLedger(core.call, core.ledger_of)


@asynccontextmanager
async def as_system(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """Yield a connection in a transaction as `clob_system` (the ledger's steps)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE clob_system")
        yield conn


def code_sha256(code: str) -> bytes:
    """Return the SHA-256 of a confirmation code, as stored."""
    return hashlib.sha256(code.encode()).digest()


async def view(core: GatewayCore, w: Withdrawal) -> WithdrawalView:
    """Return the API view of a withdrawal."""
    decimals = await core.registry.decimals(await core.pool(), w.asset)
    return WithdrawalView(
        withdrawal_id=w.withdrawal_id, asset=w.asset,
        amount=units.atoms_to_decimal(w.amount_atoms, decimals), address=w.destination,
        status=w.status.value, client_request_id=w.client_request_id,
        tx_signature=w.tx_signature, error=w.last_error, created_at=w.created_at,
        updated_at=w.updated_at, confirm_expires_at=w.confirm_expires_at,
        debited_at=w.debited_at, sent_at=w.sent_at, confirmed_at=w.completed_at,
        refunded_at=w.refunded_at,
    )  # fmt: skip


async def request(
    core: GatewayCore, account_id: AccountId, body: WithdrawalCreate
) -> WithdrawalCreated:
    """Validate, apply the policy, record and debit (or hold) a withdrawal.

    Raises:
        ApiError: `unknown_asset`, `invalid_decimal`, `invalid_amount`,
            `amount_too_large`, `invalid_address`, `address_not_allowed`,
            `address_cooling_off`, `daily_limit_exceeded`, `insufficient_balance`.
    """
    pool = await core.pool()
    decimals = await core.registry.decimals(pool, body.asset)
    try:
        atoms = units.amount_to_atoms(body.amount, decimals, "amount")
    except units.UnitError as exc:
        raise api_error(exc.code, str(exc), field=exc.field) from None
    address = check_address(body.address)
    async with db.acting_as(pool, account_id, projection=None) as conn:
        await records.lock_requests(conn, account_id)
        await records.cancel_expired(conn)
        w, code = await _record(core, conn, account_id, body, atoms, address)
    if w.status is WithdrawalStatus.REQUESTED:
        w = await _debit(core, w)
    return WithdrawalCreated(**(await view(core, w)).model_dump(), confirmation_code=code)


async def _record(  # noqa: PLR0917 (the request's parts)
    core: GatewayCore,
    conn: asyncpg.Connection,
    account_id: AccountId,
    body: WithdrawalCreate,
    atoms: int,
    address: str,
) -> tuple[Withdrawal, str | None]:
    """Apply the policy and record the request (a retry of a client request id answers
    the first one); return it and the second step's code if it has one now."""
    if body.client_request_id is not None:
        earlier = await conn.fetchrow(
            "SELECT withdrawal_id FROM withdrawals WHERE client_request_id = $1",
            body.client_request_id,
        )
        if earlier is not None:
            found = await records.get(conn, int(earlier[0]))
            assert found is not None
            return found, None
    asset_id = int(await conn.fetchval("SELECT asset_id FROM assets WHERE symbol = $1", body.asset))
    rules = core.args.custody.policy()
    decision = await _decide(conn, rules, body.asset, asset_id, atoms, address)
    w, _ = await records.insert_request(
        conn, account_id, asset_id, atoms, address, body.client_request_id
    )
    if not decision.two_step:
        return w, None
    code = secrets.token_urlsafe(16)
    held = await records.hold_for_confirmation(
        conn, w.withdrawal_id, code_sha256(code), rules.confirm_ttl_s
    )
    assert held is not None
    return held, code


async def _decide(  # noqa: PLR0917 (the policy's inputs)
    conn: asyncpg.Connection,
    rules: policy.CustodyPolicy,
    asset: str,
    asset_id: int,
    atoms: int,
    address: str,
) -> policy.Allowed:
    """Apply the policy on the database's clock (the one `active_from` was set with),
    read now, after the account's lock: the transaction's start may be older than rows
    recorded while it waited."""
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    listed = await records.find_address(conn, address)
    recent = await records.recent_counted(conn, asset_id, COUNTED_STATES)
    decision = policy.decide(
        rules, asset, atoms, None if listed is None else _ms(listed.active_from),
        [(_ms(at), amount) for at, amount in recent], _ms(now),
    )  # fmt: skip
    if isinstance(decision, policy.Refusal):
        raise api_error(decision.code, decision.message, **dict(decision.details))
    return decision


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def _debit(core: GatewayCore, w: Withdrawal) -> Withdrawal:
    """Debit a recorded request; a refusal deletes a fresh `requested` row (so the
    request changed nothing) and answers 422 `insufficient_balance`."""
    pool = await core.pool()
    try:
        async with as_system(pool) as conn:
            return await flows.debit_withdrawal(conn, ledger(core), w)
    except InsufficientBalanceError:
        if w.status is WithdrawalStatus.REQUESTED:
            async with as_system(pool) as conn:
                await records.drop_refused(conn, w.withdrawal_id)
        raise api_error(
            "insufficient_balance", "not enough available balance for this withdrawal",
            asset=w.asset,
        ) from None  # fmt: skip


async def confirm(
    core: GatewayCore, account_id: AccountId, withdrawal_id: int, body: WithdrawalConfirm
) -> WithdrawalView:
    """Take a held withdrawal's second step: check its code, then debit it.

    Raises:
        ApiError: `unknown_withdrawal`, `withdrawal_not_pending`, `confirmation_expired`,
            `invalid_confirmation_code`, `address_not_allowed`, `insufficient_balance`.
    """
    async with db.acting_as(await core.pool(), account_id, projection=None) as conn:
        await records.lock_requests(conn, account_id)
        w = await records.get(conn, withdrawal_id)
        refusal = await _confirm_refusal(conn, w, body)  # the expiry's cancel is committed
    if refusal is not None:
        raise refusal
    assert w is not None
    return await view(core, await _debit(core, w))


async def _confirm_refusal(
    conn: asyncpg.Connection, w: Withdrawal | None, body: WithdrawalConfirm
) -> ApiError | None:
    """Return why a second step is refused (an expired one is cancelled now), or None."""
    if w is None:
        return api_error("unknown_withdrawal", "no such withdrawal")
    if w.status is not WithdrawalStatus.PENDING_CONFIRMATION:
        return api_error("withdrawal_not_pending", f"the withdrawal is {w.status.value}",
                         status=w.status.value)  # fmt: skip
    if await records.cancel_expired(conn):
        current = await records.get(conn, w.withdrawal_id)
        if current is not None and current.status is WithdrawalStatus.CANCELLED:
            return api_error("confirmation_expired", "the confirmation time ran out: the "
                             "withdrawal is cancelled")  # fmt: skip
    if not await records.check_code(conn, w.withdrawal_id, code_sha256(body.code)):
        return api_error("invalid_confirmation_code", "the confirmation code is wrong")
    if await records.find_address(conn, w.destination) is None:
        return api_error("address_not_allowed", "the destination left your allowlist")
    return None


async def deposit_address(
    core: GatewayCore, account_id: AccountId, asset: str
) -> DepositAddressView:
    """Return the account's deposit address for an asset from the chain actor, which
    registers the vault on chain the first time.

    Raises:
        ApiError: 404 `unknown_asset`; 409 `asset_not_on_chain` (a real chain's asset
            without a configured mint); 503 `unavailable` (the chain or the chain actor).
    """
    pool = await core.pool()
    await core.registry.decimals(pool, asset)  # 404 unknown_asset
    try:
        address = await core.call_again_once(CHAIN_ACTOR, "deposit_address", int(account_id), asset)
    except RayTaskError as exc:
        if isinstance(exc.cause, KeyError):
            raise api_error("asset_not_on_chain", "the asset has no mint on chain yet",
                            asset=asset) from None  # fmt: skip
        raise unavailable(CHAIN_ACTOR, exc.cause) from None  # the chain: retry
    mint = await pool.fetchval("SELECT mint FROM assets WHERE symbol = $1", asset)
    return DepositAddressView(asset=asset, address=str(address), mint=str(mint))
