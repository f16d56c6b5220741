"""The rate limit and CORS origins through HTTP: a second app on the same cluster with a tiny
quota, client IPs from X-Forwarded-For (so each test has buckets of its own) and one
allowed CORS origin."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import asyncpg
import httpx
import pytest

from serve_app import keys
from tests.e2e.conftest import ADMIN_TOKEN, Exchange

QUOTA = 3
ORIGIN = "https://app.example"


@pytest.fixture(scope="module")
def limited_url(exchange: Exchange, redis_url: str) -> Iterator[str]:
    """Deploy the gateway again, with a quota of QUOTA requests a minute."""
    from ray import serve

    from serve_app.app import app_builder
    from serve_app.gateway.args import AppArgs

    name = f"limited-{uuid.uuid4().hex[:6]}"
    args = AppArgs(
        database_url=exchange.database_url, redis_url=redis_url, admin_token=ADMIN_TOKEN,
        rate_limit_per_minute=QUOTA, client_ip="forwarded_for", cors_origins=[ORIGIN],
    )  # fmt: skip
    serve.run(app_builder(args), name=name, route_prefix=f"/{name}")
    try:
        yield f"{exchange.url}/{name}"
    finally:
        serve.delete(name)


def _in_one_window(send: Callable[[], list[httpx.Response]]) -> list[httpx.Response]:
    """Run `send` again if its requests straddled a minute boundary (two windows)."""
    for _ in range(2):
        minute = time.time() // 60
        responses = send()
        if time.time() // 60 == minute:
            break
    return responses


def _client(url: str, **headers: str) -> httpx.Client:
    # Each client is its own address to the limit (X-Forwarded-For), so tests do not share.
    forwarded = f"198.51.100.{uuid.uuid4().int % 250 + 1}, 10.0.0.{uuid.uuid4().int % 250}"
    return httpx.Client(base_url=url, headers={"X-Forwarded-For": forwarded, **headers})


def test_requests_over_the_quota_get_429_with_the_rate_limit_headers(
    exchange: Exchange, limited_url: str
) -> None:
    def send() -> list[httpx.Response]:
        with _client(limited_url, **{"X-API-Key": exchange.trader().key}) as client:
            return [client.get("/api/v1/balances") for _ in range(QUOTA + 2)]

    responses = _in_one_window(send)
    assert [r.status_code for r in responses] == [200] * QUOTA + [429, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {str(QUOTA)}
    reset = int(responses[-1].headers["X-RateLimit-Reset"])
    assert reset % 60 == 0 and 0 < reset - time.time() <= 60
    assert 1 <= int(responses[-1].headers["Retry-After"]) <= 60
    assert "Retry-After" not in responses[0].headers
    body = responses[-1].json()
    assert body["code"] == "rate_limited" and body["details"]["limit"] == QUOTA


def test_every_key_of_an_account_shares_its_quota(exchange: Exchange, limited_url: str) -> None:
    def send() -> list[httpx.Response]:
        first = exchange.trader()
        second = asyncio.run(_another_key(exchange.database_url, first.account_id))
        out = []
        for key in (first.key, second, first.key, second, first.key):
            with _client(limited_url, **{"X-API-Key": key}) as client:
                out.append(client.get("/api/v1/balances"))
        return out

    assert [r.status_code for r in _in_one_window(send)] == [200] * QUOTA + [429, 429]


def test_an_order_over_the_quota_is_refused_and_not_placed(
    exchange: Exchange, limited_url: str
) -> None:
    market = exchange.create_market(f"RL{uuid.uuid4().hex[:4].upper()}")
    order = {"market": market, "side": "buy", "price": "1", "qty": "1"}
    traders = []

    def send() -> list[httpx.Response]:
        traders.append(exchange.trader(USDC="1000"))
        with _client(limited_url, **{"X-API-Key": traders[-1].key}) as client:
            return [client.post("/api/v1/orders", json=order) for _ in range(QUOTA + 1)]

    responses = _in_one_window(send)
    assert [r.status_code for r in responses] == [201] * QUOTA + [429]
    assert responses[-1].json()["code"] == "rate_limited"
    placed = traders[-1].http.get("/api/v1/orders", params={"market": market}).json()
    assert len(placed["orders"]) == QUOTA


def test_anonymous_requests_count_per_client_ip(limited_url: str) -> None:
    def send() -> list[httpx.Response]:
        with _client(limited_url) as one, _client(limited_url) as other:
            return [one.get("/api/v1/markets") for _ in range(QUOTA + 1)] + [
                other.get("/api/v1/markets")
            ]

    statuses = [r.status_code for r in _in_one_window(send)]
    assert statuses == [200] * QUOTA + [429, 200]


def test_a_bad_key_counts_against_the_client_ip(limited_url: str) -> None:
    def send() -> list[httpx.Response]:
        with _client(limited_url, **{"X-API-Key": "nope.nope"}) as client:
            return [client.get("/api/v1/balances") for _ in range(QUOTA + 1)]

    responses = _in_one_window(send)
    assert [r.status_code for r in responses] == [401] * QUOTA + [429]


def test_admin_requests_and_probes_are_not_limited(limited_url: str) -> None:
    with _client(limited_url, **{"X-Admin-Token": ADMIN_TOKEN}) as admin:
        # An invalid market spec: the admin route answers, nothing is created.
        answers = [admin.post("/api/v1/admin/markets", json={}) for _ in range(QUOTA + 2)]
    with _client(limited_url) as probe:
        answers += [probe.get("/health") for _ in range(QUOTA + 2)]
    assert {r.status_code for r in answers} == {422, 200}
    assert all("X-RateLimit-Limit" not in r.headers for r in answers)


def test_a_wrong_admin_token_counts_against_the_client_ip(limited_url: str) -> None:
    def send() -> list[httpx.Response]:
        with _client(limited_url, **{"X-Admin-Token": "not-the-token-at-all"}) as client:
            return [client.post("/api/v1/admin/markets", json={}) for _ in range(QUOTA + 1)]

    assert [r.status_code for r in _in_one_window(send)] == [403] * QUOTA + [429]


def test_only_the_configured_origin_passes_the_cors_preflight(limited_url: str) -> None:
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    with _client(limited_url) as client:
        allowed = client.options("/api/v1/orders", headers={"Origin": ORIGIN, **ask})
        refused = client.options(
            "/api/v1/orders", headers={"Origin": "https://evil.example", **ask}
        )
        simple = client.get("/health", headers={"Origin": ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert refused.status_code == 400
    assert refused.json() == {
        "code": "cors_refused",
        "message": "the CORS preflight asks for what this API does not allow",
        "details": {"refused": ["origin"]},
    }
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert simple.headers["Access-Control-Allow-Origin"] == ORIGIN


async def _another_key(database_url: str, account_id: int) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return (await keys.create_key(conn, account_id=account_id, label="second")).key
    finally:
        await conn.close()
