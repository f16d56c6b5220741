"""The edge through HTTP on the main app: CORS, request ids, the request log, /metrics."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Exchange

ORDERS = "/api/v1/orders"


def _log_line(exchange: Exchange, request_id: str) -> dict[str, Any]:
    """Return the request log line of a request id (written as the answer ends)."""
    deadline = time.monotonic() + 5
    while True:
        for line in exchange.request_log.read_text().splitlines():
            entry: dict[str, Any] = json.loads(line)
            if entry["request_id"] == request_id:
                return entry
        assert time.monotonic() < deadline, f"no log line for {request_id}"
        time.sleep(0.05)


def test_the_lean_order_route_answers_a_cors_preflight_and_cors_headers(
    exchange: Exchange,
) -> None:
    market = exchange.create_market(f"CO{uuid.uuid4().hex[:4].upper()}")
    trader = exchange.trader(USDC="100")
    preflight = trader.http.options(
        ORDERS,
        headers={
            "Origin": "https://anywhere.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key,x-request-id",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    order = {"market": market, "side": "buy", "price": "1", "qty": "1"}
    placed = trader.http.post(ORDERS, json=order, headers={"Origin": "https://anywhere.example"})
    assert placed.status_code == 201, placed.text
    assert placed.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Request-ID" in placed.headers["Access-Control-Expose-Headers"]


def test_a_disallowed_preflight_method_answers_the_error_shape(exchange: Exchange) -> None:
    answer = httpx.options(
        f"{exchange.url}{ORDERS}",
        headers={"Origin": "https://a.example", "Access-Control-Request-Method": "PUT"},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "cors_refused"
    assert answer.json()["details"] == {"refused": ["method"]}


def test_an_order_is_logged_once_with_its_request_id_account_route_and_status(
    exchange: Exchange,
) -> None:
    market = exchange.create_market(f"LG{uuid.uuid4().hex[:4].upper()}")
    trader = exchange.trader(USDC="100")
    request_id = f"test-{uuid.uuid4()}"
    order = {"market": market, "side": "buy", "price": "1", "qty": "1"}
    placed = trader.http.post(ORDERS, json=order, headers={"X-Request-ID": request_id})
    assert placed.status_code == 201, placed.text
    assert placed.headers["X-Request-ID"] == request_id
    entry = _log_line(exchange, request_id)
    assert {k: entry[k] for k in ("account_id", "method", "route", "path", "status", "code")} == {
        "account_id": trader.account_id, "method": "POST", "route": ORDERS, "path": ORDERS,
        "status": 201, "code": None,
    }  # fmt: skip
    assert 0 < entry["latency_ms"] < 30_000
    assert entry["time"].endswith("Z") and len(entry["time"]) == len("2030-01-01T00:00:00.000Z")


def test_a_refused_request_is_logged_with_its_code_and_route_template(
    exchange: Exchange,
) -> None:
    trader = exchange.trader()
    unknown = trader.http.get(f"{ORDERS}/{uuid.uuid4()}")
    assert unknown.status_code == 404
    entry = _log_line(exchange, unknown.headers["X-Request-ID"])
    assert (entry["route"], entry["status"], entry["code"]) == (
        "/api/v1/orders/{order_id}", 404, "unknown_order",
    )  # fmt: skip
    assert entry["account_id"] == trader.account_id
    anonymous = httpx.get(f"{exchange.url}/api/v1/balances")
    entry = _log_line(exchange, anonymous.headers["X-Request-ID"])
    assert (entry["account_id"], entry["status"], entry["code"]) == (None, 401, "unauthorized")


def test_a_request_id_that_is_too_long_is_refused(exchange: Exchange) -> None:
    answer = httpx.get(f"{exchange.url}/api/v1/markets", headers={"X-Request-ID": "x" * 129})
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request_id"


def _scrape(exchange: Exchange) -> dict[str, list[Any]]:
    answer = httpx.get(f"{exchange.url}/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(answer.text)}


def _value(samples: list[Any], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_metrics_count_orders_by_result_and_show_the_markets(exchange: Exchange) -> None:
    market = exchange.create_market(f"MX{uuid.uuid4().hex[:4].upper()}")
    trader = exchange.trader(USDC="10")
    before = _scrape(exchange)
    order = {"market": market, "side": "buy", "price": "1", "qty": "1"}
    assert trader.http.post(ORDERS, json=order).status_code == 201
    too_big = {**order, "qty": "100"}
    assert trader.http.post(ORDERS, json=too_big).json()["code"] == "insufficient_funds"
    deadline = time.monotonic() + 15  # the market figures are cached for 5 s
    while True:
        after = _scrape(exchange)
        passes = after["clob_market_pass_commands"]
        if _value(passes, "clob_market_pass_commands_count", market=market) >= 2:
            break  # both orders' passes (the refused one is not journaled: no funds held)
        assert time.monotonic() < deadline, "the market's passes never reached /metrics"
        time.sleep(1)
    for result in ("placed", "insufficient_funds"):
        counts = [
            _value(m["clob_orders"], "clob_orders_total", result=result) for m in (before, after)
        ]
        assert counts[1] - counts[0] == 1, result
    latency = after["clob_http_request_duration_seconds"]
    assert _value(latency, "clob_http_request_duration_seconds_count", route=ORDERS) >= 2
    assert _value(after["clob_market_up"], "clob_market_up", market=market) == 1
    assert _value(passes, "clob_market_pass_commands_sum", market=market) >= 2
    assert _value(after["clob_market_journal_seq"], "clob_market_journal_seq", market=market) == 1
    for lag in ("clob_market_ledger_lag_entries", "clob_market_projection_lag_entries"):
        assert _value(after[lag], lag, market=market) >= 0
