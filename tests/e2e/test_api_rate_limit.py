"""The per-key rate limit through HTTP: a second app on the same cluster with a tiny quota."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Exchange

QUOTA = 3


@pytest.fixture(scope="module")
def limited_url(exchange: Exchange, redis_url: str) -> Iterator[str]:
    """Deploy the gateway again, with a quota of QUOTA requests a minute per key."""
    from ray import serve

    from serve_app.app import AppArgs, app_builder

    name = f"limited-{uuid.uuid4().hex[:6]}"
    args = AppArgs(
        database_url=exchange.database_url, redis_url=redis_url, rate_limit_per_minute=QUOTA
    )
    serve.run(app_builder(args), name=name, route_prefix=f"/{name}")
    try:
        yield f"{exchange.url}/{name}"
    finally:
        serve.delete(name)


def test_requests_over_the_quota_get_429_rate_limited(exchange: Exchange, limited_url: str) -> None:
    for _ in range(2):  # a second try only if the calls straddled a minute boundary
        trader = exchange.trader()
        minute = time.time() // 60
        with httpx.Client(base_url=limited_url, headers={"X-API-Key": trader.key}) as client:
            responses = [client.get("/api/v1/balances") for _ in range(QUOTA + 2)]
        if time.time() // 60 == minute:
            break
    assert [r.status_code for r in responses] == [200] * QUOTA + [429, 429]
    body = responses[-1].json()
    assert body["code"] == "rate_limited" and body["details"]["limit"] == QUOTA
