"""Custody records on a real PostgreSQL and a real ledger shard (Ray): the SQL CHECK and
the transition table agree, each step moves a row only along the table, and the steps
that span the ledger and the records (debit, fail + refund, credit a deposit) move money
exactly once however often they run, across a crash between their two halves and a shard
restart, with conservation holding."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.accounts import AccountId
from actors.custody import deposits, flows, records
from actors.custody.withdrawals import STATUSES, WithdrawalStatus
from actors.ledger.rules import InsufficientBalanceError
from tests.support.custody_kit import start_shards, system_conn_with_asset
from tests.support.market_kit import new_accounts

ASSET = "CU"
WALLET = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
S = WithdrawalStatus


@pytest_asyncio.fixture(scope="module")
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A `clob_system` connection to the module's database, with the asset."""
    c = await system_conn_with_asset(db_url, ASSET)
    yield c
    await c.close()


@pytest.fixture(scope="module")
def shard(namespace: str, db_url: str, conn: asyncpg.Connection) -> Any:
    """Ledger shard 0 of 1."""
    return start_shards(namespace, db_url, 1)[0]


@pytest.fixture(scope="module")
def ledger(shard: Any) -> flows.ShardLedger:
    """The custody port over the shard, as the custody actor builds it."""

    async def call(name: str, method: str, *args: Any) -> Any:
        assert name == "ledger:0"
        return await getattr(shard, method).remote(*args)

    async def shard_of(account_id: AccountId) -> str:
        return "ledger:0"

    return flows.ShardLedger(call, shard_of)


async def _funded(db_url: str, shard: Any, atoms: int) -> AccountId:
    [account] = await new_accounts(db_url, 1)
    await shard.credit.remote(account, ASSET, atoms, f"dep-{account}")
    return AccountId(account)


async def _request(conn: asyncpg.Connection, account: int, atoms: int) -> records.Withdrawal:
    asset_id = await conn.fetchval("SELECT asset_id FROM assets WHERE symbol = $1", ASSET)
    w, new = await records.insert_request(conn, account, asset_id, atoms, WALLET, None)
    assert new and w.status is S.REQUESTED
    return w


async def _available(shard: Any, account: int) -> int:
    views = await shard.balances.remote(account)
    return sum(v.available_atoms for v in views if v.asset == ASSET)


async def _restart(shard: Any) -> None:
    before = await shard.__ray_call__.remote(getattr, "pid")
    ray.kill(shard, no_restart=False)
    for _ in range(300):
        try:
            if await shard.__ray_call__.remote(getattr, "pid") != before:
                await shard.ping.remote()
                return
        except (RayActorError, ActorUnavailableError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the shard did not come back")


async def _assert_conserved(shard: Any, conn: asyncpg.Connection) -> None:
    t = (await shard.totals.remote())[ASSET]
    assert t["available"] + t["locked"] + t["fees"] == t["credited"] - t["debited"]
    await shard.flush.remote()
    gap = await conn.fetchval(
        """SELECT (SELECT coalesce(sum(available_atoms + locked_atoms), 0) FROM balances
                    WHERE asset_id = a.asset_id)
                - (SELECT coalesce(sum(amount_atoms), 0) FROM ledger_credits
                    WHERE asset_id = a.asset_id)
                + (SELECT coalesce(sum(amount_atoms), 0) FROM ledger_debits
                    WHERE asset_id = a.asset_id)
             FROM assets a WHERE symbol = $1""",
        ASSET,
    )
    assert gap == 0


async def test_the_status_check_lists_exactly_the_transition_tables_states(
    conn: asyncpg.Connection,
) -> None:
    definition = await conn.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'withdrawals_status_check'"
    )
    assert set(re.findall(r"'([a-z_]+)'::text", definition)) == set(STATUSES)


async def test_a_withdrawal_is_debited_once_and_refunded_once_across_a_restart(
    db_url: str, conn: asyncpg.Connection, shard: Any, ledger: flows.ShardLedger
) -> None:
    account = await _funded(db_url, shard, 1_000)
    w = await _request(conn, account, 300)
    first = await flows.debit_withdrawal(conn, ledger, w)
    again = await flows.debit_withdrawal(conn, ledger, w)  # a retry: the ledger moves once
    assert first.status is again.status is S.DEBITED and first.debited_at == again.debited_at
    assert await _available(shard, account) == 700
    assert await records.mark_confirmed(conn, w.withdrawal_id, "1" * 88) is None  # not sent
    [claimed] = await records.claim_debited(conn, 10, lease_s=60)
    assert claimed.withdrawal_id == w.withdrawal_id and claimed.attempts == 1
    assert await records.claim_debited(conn, 10, lease_s=60) == []  # leased
    for signature, height in (("2" * 88, 150), ("3" * 88, 300)):  # a blockhash expired
        sent = await records.mark_sent(conn, w.withdrawal_id, signature, height)
        assert sent is not None and sent.status is S.SENT and sent.tx_signature == signature
    assert await records.sends(conn, w.withdrawal_id) == [("2" * 88, 150), ("3" * 88, 300)]
    failed = await flows.fail_and_refund(conn, ledger, w.withdrawal_id, "blockhash expired")
    assert failed is not None and failed.status is S.FAILED and failed.refunded_at is not None
    await _restart(shard)
    repeat = await flows.fail_and_refund(conn, ledger, w.withdrawal_id, "again")
    assert repeat is not None and repeat.refunded_at == failed.refunded_at
    assert repeat.last_error == "blockhash expired"
    assert await _available(shard, account) == 1_000
    refunds = await conn.fetchval(
        "SELECT count(*) FROM ledger_credits WHERE reference = $1", w.refund_reference
    )
    assert refunds == 1
    assert await records.mark_sent(conn, w.withdrawal_id, "4" * 88, 1) is None  # terminal
    await _assert_conserved(shard, conn)


async def test_a_request_that_died_before_its_record_is_finished_once(
    db_url: str, conn: asyncpg.Connection, shard: Any, ledger: flows.ShardLedger
) -> None:
    account = await _funded(db_url, shard, 1_000)
    debited = await _request(conn, account, 400)
    await ledger.debit(account, ASSET, 400, debited.debit_reference)  # then the crash
    short = await _request(conn, account, 700)  # more than what is left
    assert await flows.resolve_requested(conn, ledger, older_than_s=0) == 2
    found = await records.get(conn, debited.withdrawal_id)
    assert found is not None and found.status is S.DEBITED
    cancelled = await records.get(conn, short.withdrawal_id)
    assert cancelled is not None and cancelled.status is S.CANCELLED
    assert cancelled.last_error == "insufficient_balance"
    assert await _available(shard, account) == 600
    assert await flows.resolve_requested(conn, ledger, older_than_s=0) == 0
    with pytest.raises(InsufficientBalanceError):
        await flows.debit_withdrawal(conn, ledger, await _request(conn, account, 601))
    await _assert_conserved(shard, conn)


async def test_a_refund_owed_after_a_crash_is_paid_once(
    db_url: str, conn: asyncpg.Connection, shard: Any, ledger: flows.ShardLedger
) -> None:
    account = await _funded(db_url, shard, 500)
    w = await flows.debit_withdrawal(conn, ledger, await _request(conn, account, 500))
    assert await records.mark_failed(conn, w.withdrawal_id, "dropped") is not None  # crash
    assert w.withdrawal_id in {o.withdrawal_id for o in await records.owed_refunds(conn)}
    assert await flows.refund_owed(conn, ledger) >= 1
    assert await flows.refund_owed(conn, ledger) == 0
    assert await _available(shard, account) == 500
    assert await records.cancel(conn, w.withdrawal_id, "too late") is None  # it was debited
    await _assert_conserved(shard, conn)


async def test_a_deposit_is_recorded_and_credited_once(
    db_url: str, conn: asyncpg.Connection, shard: Any, ledger: flows.ShardLedger
) -> None:
    [account] = await new_accounts(db_url, 1)
    asset_id = await conn.fetchval("SELECT asset_id FROM assets WHERE symbol = $1", ASSET)
    vault, signature = "V" * 44, "5" * 88
    assert await deposits.insert_seen(conn, account, asset_id, 250, vault, signature, 10)
    assert not await deposits.insert_seen(conn, account, asset_id, 250, vault, signature, 10)
    await deposits.set_confirmations(conn, signature, vault, 32)
    await deposits.set_confirmations(conn, signature, vault, 3)  # never lowered
    [seen] = [d for d in await deposits.pending(conn) if d.tx_signature == signature]
    assert (seen.amount_atoms, seen.confirmations, seen.status) == (250, 32, "pending")
    assert await flows.credit_deposit(conn, ledger, seen)
    assert not await flows.credit_deposit(conn, ledger, seen)  # the repeat credits nothing
    assert await _available(shard, account) == 250
    assert await deposits.cursor(conn, vault) is None
    await deposits.set_cursor(conn, vault, signature, 10)
    await deposits.set_cursor(conn, vault, "6" * 88, 9)  # older: the cursor stays
    assert await deposits.cursor(conn, vault) == (signature, 10)
    await _assert_conserved(shard, conn)


async def test_a_new_address_cools_off_and_adding_it_again_does_not_restart_it(
    db_url: str, conn: asyncpg.Connection
) -> None:
    [account] = await new_accounts(db_url, 1)
    async with conn.transaction():  # as the gateway: clob_api, acting for the account
        await conn.execute("SET LOCAL ROLE clob_api")
        await conn.execute("SELECT set_config('clob.account_id', $1, true)", str(account))
        added = await records.add_address(conn, account, WALLET, "cold", cooling_off_s=3600)
        assert (added.active_from - added.created_at).total_seconds() == 3600
        assert await records.add_address(conn, account, WALLET, "other", 0) == added
        assert [a.address for a in await records.list_addresses(conn)] == [WALLET]
    async with conn.transaction():  # another account sees none of it
        await conn.execute("SET LOCAL ROLE clob_api")
        await conn.execute("SELECT set_config('clob.account_id', $1, true)", str(account + 1))
        assert await records.find_address(conn, WALLET) is None
        assert not await records.remove_address(conn, WALLET)
