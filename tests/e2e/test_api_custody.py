"""The custody endpoints over HTTP: the allowlist, withdrawals (debited at once, or held
for the second step), the daily limit, the lists, and every bad input of issue 15 (an
unknown asset; zero, negative or too precise amounts; an address not on the allowlist;
an invalid base58 address; a missing scope; another account's ids): each answers its
code and changes nothing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from solders.signature import Signature

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.e2e.conftest import (  # noqa: E402
    Exchange,
    deposit_address_count,
    withdrawing_account_keys,
)

WALLET = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"
OTHER_WALLET = "4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T"


class Holder:
    """An account with a `withdraw` key (`http`) and a read-only key (`reader`)."""

    def __init__(self, exchange: Exchange, **credits: str) -> None:
        created, read_only = asyncio.run(withdrawing_account_keys(exchange.database_url, ("read",)))
        self.account_id = created.account_id
        self.http = httpx.Client(base_url=exchange.url, headers={"X-API-Key": created.key},
                                 timeout=30.0)  # fmt: skip
        self.reader = httpx.Client(base_url=exchange.url, headers={"X-API-Key": read_only},
                                   timeout=30.0)  # fmt: skip
        for asset, amount in credits.items():
            body = {"account_id": self.account_id, "asset": asset, "amount": amount}
            assert exchange.admin.post("/api/v1/admin/credits", json=body).status_code == 200

    def available(self, asset: str = "WDR") -> str:
        response = self.http.get("/api/v1/balances")
        assert response.status_code == 200, response.text
        found = [b["available"] for b in response.json()["balances"] if b["asset"] == asset]
        return found[0] if found else "0"

    def allow(self, address: str = WALLET) -> dict[str, Any]:
        response = self.http.post("/api/v1/withdrawal-addresses", json={"address": address})
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def withdraw(self, expect: int = 201, **fields: Any) -> dict[str, Any]:
        body = {"asset": "WDR", "amount": "1", "address": WALLET, **fields}
        response = self.http.post("/api/v1/withdrawals", json=body)
        assert response.status_code == expect, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def state(self) -> tuple[Any, ...]:
        """Everything a custody request could change, as this account sees it."""
        return (
            self.http.get("/api/v1/balances").json(),
            self.http.get("/api/v1/withdrawals").json(),
            self.http.get("/api/v1/withdrawal-addresses").json(),
        )

    def close(self) -> None:
        self.http.close()
        self.reader.close()


@pytest.fixture(scope="module")
def market(exchange: Exchange) -> str:
    return exchange.create_market("WDR", base_decimals=9)


@pytest.fixture
def holder(exchange: Exchange, market: str) -> Iterator[Holder]:
    made = Holder(exchange, WDR="10", USDC="10")
    made.allow()
    yield made
    made.close()


def test_the_allowlist_adds_lists_and_removes(holder: Holder) -> None:
    added = holder.allow(OTHER_WALLET)
    # Embedded mode: no cooling-off, usable at once.
    assert added["address"] == OTHER_WALLET and added["active_from"] == added["created_at"]
    assert holder.allow(OTHER_WALLET) == added  # again: the same entry
    listed = holder.reader.get("/api/v1/withdrawal-addresses").json()["addresses"]
    assert [a["address"] for a in listed] == [WALLET, OTHER_WALLET]
    removed = holder.http.delete(f"/api/v1/withdrawal-addresses/{OTHER_WALLET}")
    assert removed.status_code == 200 and removed.json()["address"] == OTHER_WALLET
    again = holder.http.delete(f"/api/v1/withdrawal-addresses/{OTHER_WALLET}")
    assert again.status_code == 404 and again.json()["code"] == "unknown_address"


def test_a_withdrawal_is_debited_at_once_and_listed(holder: Holder) -> None:
    made = holder.withdraw(amount="1.5", client_request_id="w-1")
    assert made["status"] == "debited" and made["amount"] == "1.500000000"
    assert made["confirmation_code"] is None and made["debited_at"] is not None
    assert holder.available() == "8.500000000"
    retry = holder.withdraw(amount="1.5", client_request_id="w-1")  # idempotent
    assert retry["withdrawal_id"] == made["withdrawal_id"] and holder.available() == "8.500000000"
    one = holder.reader.get(f"/api/v1/withdrawals/{made['withdrawal_id']}")
    assert one.status_code == 200 and one.json()["status"] == "debited"
    page = holder.reader.get("/api/v1/withdrawals", params={"status": "debited"}).json()
    assert [w["withdrawal_id"] for w in page["withdrawals"]] == [made["withdrawal_id"]]


def test_above_the_threshold_a_withdrawal_waits_for_its_code(holder: Holder) -> None:
    held = holder.withdraw(amount="2.5")
    assert held["status"] == "pending_confirmation" and held["confirmation_code"]
    assert holder.available() == "10.000000000"  # nothing debited yet
    url = f"/api/v1/withdrawals/{held['withdrawal_id']}/confirm"
    wrong = holder.http.post(url, json={"code": "not-it"})
    assert wrong.status_code == 422 and wrong.json()["code"] == "invalid_confirmation_code"
    assert holder.available() == "10.000000000"
    scoped = holder.reader.post(url, json={"code": held["confirmation_code"]})
    assert scoped.status_code == 403 and scoped.json()["code"] == "forbidden"
    done = holder.http.post(url, json={"code": held["confirmation_code"]})
    assert done.status_code == 200 and done.json()["status"] == "debited", done.text
    assert holder.available() == "7.500000000"
    again = holder.http.post(url, json={"code": held["confirmation_code"]})
    assert again.status_code == 409 and again.json()["code"] == "withdrawal_not_pending"
    assert holder.available() == "7.500000000"


def test_the_daily_limit_refuses_what_would_pass_it(holder: Holder) -> None:
    holder.withdraw(amount="2")
    holder.withdraw(amount="2")
    before = holder.state()
    refused = holder.withdraw(expect=422, amount="1.000000001")
    assert refused["code"] == "daily_limit_exceeded"
    assert refused["details"]["remaining_atoms"] == 10**9
    assert holder.state() == before
    holder.withdraw(amount="1")  # exactly up to the limit
    assert holder.available() == "5.000000000"


BAD = [
    ("unknown asset", {"asset": "NOPE"}, 404, "unknown_asset"),
    ("zero", {"amount": "0"}, 422, "invalid_amount"),
    ("negative", {"amount": "-1"}, 422, "invalid_request"),
    ("too precise", {"amount": "0.0000000001"}, 422, "invalid_decimal"),
    ("not allowlisted", {"address": OTHER_WALLET}, 422, "address_not_allowed"),
    ("invalid base58", {"address": "0OIl" * 11}, 422, "invalid_address"),
    ("too short a key", {"address": "abc"}, 422, "invalid_address"),
    ("more than available", {"asset": "USDC", "amount": "10.5"}, 422, "insufficient_balance"),
    ("unknown field", {"memo": "hi"}, 422, "invalid_request"),
]


@pytest.mark.parametrize(("case", "fields", "status", "code"), BAD, ids=[c[0] for c in BAD])
def test_bad_withdrawals_answer_their_code_and_change_nothing(
    holder: Holder, case: str, fields: dict[str, Any], status: int, code: str
) -> None:
    before = holder.state()
    body = holder.withdraw(expect=status, **fields)
    assert body["code"] == code, (case, body)
    assert holder.state() == before


def test_an_invalid_address_is_refused_by_the_allowlist_too(holder: Holder) -> None:
    before = holder.state()
    response = holder.http.post("/api/v1/withdrawal-addresses", json={"address": "0" * 44})
    assert response.status_code == 422 and response.json()["code"] == "invalid_address"
    assert holder.state() == before


def test_writes_need_the_withdraw_scope_and_change_nothing(holder: Holder) -> None:
    before = holder.state()
    for method, path, body in (
        ("POST", "/api/v1/withdrawals", {"asset": "WDR", "amount": "1", "address": WALLET}),
        ("POST", "/api/v1/withdrawal-addresses", {"address": OTHER_WALLET}),
        ("DELETE", f"/api/v1/withdrawal-addresses/{WALLET}", None),
    ):
        response = holder.reader.request(method, path, json=body)
        assert response.status_code == 403 and response.json()["code"] == "forbidden", path
    assert holder.state() == before


def test_another_accounts_ids_are_unknown_and_untouched(exchange: Exchange, holder: Holder) -> None:
    other = Holder(exchange, WDR="10")
    try:
        other.allow(OTHER_WALLET)
        theirs = other.withdraw(amount="2.5", address=OTHER_WALLET)  # held for its code
        their_state, my_state = other.state(), holder.state()
        wid = theirs["withdrawal_id"]
        for method, path, body in (
            ("GET", f"/api/v1/withdrawals/{wid}", None),
            ("POST", f"/api/v1/withdrawals/{wid}/confirm", {"code": theirs["confirmation_code"]}),
        ):
            response = holder.http.request(method, path, json=body)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["code"] == "unknown_withdrawal"
        gone = holder.http.delete(f"/api/v1/withdrawal-addresses/{OTHER_WALLET}")
        assert gone.status_code == 404 and gone.json()["code"] == "unknown_address"
        assert wid not in {w["withdrawal_id"] for w in my_state[1]["withdrawals"]}
        assert other.state() == their_state and holder.state() == my_state
    finally:
        other.close()


def test_deposits_list_the_accounts_own_with_status_and_confirmations(
    exchange: Exchange, holder: Holder
) -> None:
    assert holder.reader.get("/api/v1/deposits").json() == {"deposits": [], "next_cursor": None}
    asyncio.run(_seen_deposit(exchange.database_url, holder.account_id))
    [seen] = holder.reader.get("/api/v1/deposits").json()["deposits"]
    assert (seen["asset"], seen["amount"], seen["status"], seen["confirmations"]) == (
        "WDR", "1.500000000", "pending", 3
    )  # fmt: skip
    other = Holder(exchange)
    try:
        assert other.reader.get("/api/v1/deposits").json()["deposits"] == []
    finally:
        other.close()


async def _seen_deposit(database_url: str, account_id: int) -> None:
    """What the deposit listener records for a transfer it saw (3 confirmations so far)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO deposits (account_id, asset_id, amount_atoms, address, tx_signature, "
            "slot, confirmations) SELECT $1, asset_id, 1500000000, $2, $3, 7, 3 FROM assets "
            "WHERE symbol = 'WDR'", account_id, "D" * 44, _signature(account_id),
        )  # fmt: skip
    finally:
        await conn.close()


def _signature(account_id: int) -> str:
    """A well-formed signature no transaction has (the deposit listener, when it runs,
    looks pending ones up on chain and waits for them)."""
    return str(Signature.from_bytes(account_id.to_bytes(8, "little") * 8))


def test_concurrent_requests_never_pass_the_daily_limit_together(holder: Holder) -> None:
    # Eight requests of 1 WDR at once against a limit of 5: the per-account lock lets
    # each see the others' rows, so exactly five are debited.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: holder.http.post(
            "/api/v1/withdrawals", json={"asset": "WDR", "amount": "1", "address": WALLET}
        ), range(8)))  # fmt: skip
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 5 + [422] * 3, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 422} == {"daily_limit_exceeded"}
    assert holder.available() == "5.000000000"


def test_an_expired_second_step_is_cancelled_and_moves_nothing(
    exchange: Exchange, holder: Holder
) -> None:
    held = holder.withdraw(amount="3")
    asyncio.run(_expire(exchange.database_url, held["withdrawal_id"]))
    url = f"/api/v1/withdrawals/{held['withdrawal_id']}/confirm"
    late = holder.http.post(url, json={"code": held["confirmation_code"]})
    assert late.status_code == 409 and late.json()["code"] == "confirmation_expired"
    after = holder.reader.get(f"/api/v1/withdrawals/{held['withdrawal_id']}").json()
    assert after["status"] == "cancelled" and holder.available() == "10.000000000"
    # A cancelled request no longer counts against the daily limit.
    assert holder.withdraw(amount="2")["status"] == "debited"


async def _expire(database_url: str, withdrawal_id: int) -> None:
    """Let a second step's time run out (as if `confirm_ttl_s` had passed)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE withdrawals SET confirm_expires_at = now() - interval '1 second' "
            "WHERE withdrawal_id = $1", withdrawal_id,
        )  # fmt: skip
    finally:
        await conn.close()


ENDPOINT_BAD = [
    ("POST", "/api/v1/withdrawal-addresses", {"address": 5}, 422, "invalid_request"),
    ("POST", "/api/v1/withdrawal-addresses", {}, 422, "invalid_request"),
    ("POST", "/api/v1/withdrawal-addresses", {"address": WALLET, "label": "x" * 129}, 422,
     "invalid_request"),
    ("DELETE", "/api/v1/withdrawal-addresses/not-base58", None, 404, "unknown_address"),
    ("POST", "/api/v1/withdrawals/abc/confirm", {"code": "x"}, 422, "invalid_request"),
    ("POST", "/api/v1/withdrawals/0/confirm", {"code": "x"}, 422, "invalid_request"),
    ("POST", "/api/v1/withdrawals/1/confirm", {"code": ""}, 422, "invalid_request"),
    ("POST", f"/api/v1/withdrawals/{2**53 - 1}/confirm", {"code": "x"}, 404,
     "unknown_withdrawal"),
    ("GET", f"/api/v1/withdrawals/{2**53 - 1}", None, 404, "unknown_withdrawal"),
    ("GET", "/api/v1/withdrawals?status=bogus", None, 422, "invalid_request"),
    ("GET", "/api/v1/withdrawals?limit=0", None, 422, "invalid_request"),
    ("GET", "/api/v1/withdrawals?cursor=zzz", None, 422, "invalid_cursor"),
    ("GET", "/api/v1/deposits?cursor=zzz", None, 422, "invalid_cursor"),
    ("GET", "/api/v1/deposits?colour=red", None, 422, "invalid_request"),
]  # fmt: skip


@pytest.mark.parametrize("case", ENDPOINT_BAD, ids=[f"{c[0]} {c[1]} {c[4]}" for c in ENDPOINT_BAD])
def test_every_custody_endpoint_refuses_bad_input_and_changes_nothing(
    holder: Holder, case: tuple[str, str, Any, int, str]
) -> None:
    method, path, body, status, code = case
    before = holder.state()
    response = holder.http.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert holder.state() == before


def test_the_deposit_address_without_the_custody_service_answers_503_and_changes_nothing(
    exchange: Exchange, holder: Holder
) -> None:
    # This module runs no custody actors (test_custody_flow.py does): the chain is away.
    response = holder.reader.get("/api/v1/deposit-address", params={"asset": "WDR"})
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "unavailable"
    assert response.json()["details"]["component"] == "custody:chain"
    assert asyncio.run(deposit_address_count(exchange.database_url, holder.account_id)) == 0
