"""The edge's ASGI layers without Serve: an `ExchangeAPI` with a lean route and FastAPI
routes, driven through httpx's ASGI transport. The rate limit needs Redis and is tested
in `tests/integration/test_rate_limit.py` and `tests/e2e/test_api_rate_limit.py`."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from starlette.types import ASGIApp, Receive, Scope, Send

from serve_app.edge.ratelimit import Quota, client_ip, resolve_client_ip
from serve_app.edge.stack import Edge, EdgeConfig
from serve_app.errors import ApiError
from serve_app.http.handlers import install_error_handlers
from serve_app.lean import ExchangeAPI

ORIGIN = {"Origin": "https://ui.example"}


def _app(tmp_path: Path, cors: tuple[str, ...] = ("*",)) -> tuple[ExchangeAPI, list[str]]:
    """Return an app with a lean `POST /api/v1/things` and FastAPI routes, and the list
    of the lean route's calls."""
    api = ExchangeAPI()
    install_error_handlers(api)
    router = APIRouter()
    calls: list[str] = []

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "missing":
            raise ApiError(404, "not_found", "no such thing")
        if thing_id == "boom":
            raise RuntimeError("a bug")
        return {"id": thing_id}

    api.include_router(router, prefix="/api/v1")

    async def lean(scope: Scope, receive: Receive, send: Send, fallback: ASGIApp) -> None:
        calls.append(scope["method"])
        if scope["headers"] and dict(scope["headers"]).get(b"x-leave") == b"1":
            return  # as the lean route does when the client went away
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    api.lean_routes[("POST", "/api/v1/things")] = lean
    config = EdgeConfig(cors_origins=cors, request_log_dir=str(tmp_path), replica="r1")
    api.edge = Edge(api.dispatch, config, core=None)
    return api, calls


def _send(api: ExchangeAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def _log(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "requests-0.log").read_text().splitlines()]


def _samples(api: ExchangeAPI, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    assert isinstance(api.edge, Edge)
    out = {}
    for family in api.edge.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_a_preflight_to_the_lean_route_is_answered_without_reaching_it(tmp_path: Path) -> None:
    api, calls = _app(tmp_path)
    answer = _send(
        api, "OPTIONS", "/api/v1/things",
        headers={**ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "X-API-Key, Content-Type"},
    )  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert calls == []
    placed = _send(api, "POST", "/api/v1/things", headers=ORIGIN)
    assert placed.status_code == 201 and calls == ["POST"]
    assert placed.headers["access-control-allow-origin"] == "*"


def test_a_refused_preflight_is_logged_with_its_code(tmp_path: Path) -> None:
    api, _ = _app(tmp_path, cors=("https://ui.example",))
    answer = _send(
        api, "OPTIONS", "/api/v1/things",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )  # fmt: skip
    assert answer.status_code == 400 and answer.json()["details"] == {"refused": ["origin"]}
    assert [(e["status"], e["code"]) for e in _log(tmp_path)] == [(400, "cors_refused")]


def test_without_origins_there_is_no_cors(tmp_path: Path) -> None:
    api, _ = _app(tmp_path, cors=())
    answer = _send(api, "GET", "/api/v1/things/a", headers=ORIGIN)
    assert "access-control-allow-origin" not in answer.headers


def test_a_request_without_an_id_gets_one_and_is_logged_once(tmp_path: Path) -> None:
    api, _ = _app(tmp_path)
    answer = _send(api, "POST", "/api/v1/things")
    request_id = answer.headers["x-request-id"]
    assert len(request_id) == 32
    [line] = _log(tmp_path)
    assert {k: line[k] for k in ("request_id", "method", "route", "path", "status")} == {
        "request_id": request_id, "method": "POST", "route": "/api/v1/things",
        "path": "/api/v1/things", "status": 201,
    }  # fmt: skip
    assert line["account_id"] is None and line["client"] == "127.0.0.1"
    assert datetime.fromisoformat(line["time"]).tzinfo is not None
    assert line["time"].endswith("Z") and 0 <= line["latency_ms"] < 10_000


def test_a_callers_id_is_kept_and_a_bad_one_refused(tmp_path: Path) -> None:
    api, calls = _app(tmp_path)
    kept = _send(api, "GET", "/api/v1/things/a", headers={"X-Request-ID": "abc-1"})
    assert "x-request-id" not in kept.headers  # Serve's own middleware echoes it
    refused = _send(api, "POST", "/api/v1/things", headers={"X-Request-ID": "a b"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_request_id"
    assert calls == []
    assert [(e["request_id"], e["status"]) for e in _log(tmp_path)] == [
        ("abc-1", 200), ("a b", 400),
    ]  # fmt: skip


def test_routes_are_logged_and_counted_by_template_with_their_error_code(
    tmp_path: Path,
) -> None:
    api, _ = _app(tmp_path)
    assert _send(api, "GET", "/api/v1/things/missing").status_code == 404
    assert _send(api, "GET", "/nowhere").status_code == 404
    lines = [(e["route"], e["status"], e["code"]) for e in _log(tmp_path)]
    assert lines == [("/api/v1/things/{thing_id}", 404, "not_found"), (None, 404, "not_found")]
    counts = _samples(api, "clob_http_requests_total")
    key = (("method", "GET"), ("replica", "r1"), ("route", "/api/v1/things/{thing_id}"),
           ("status", "404"))  # fmt: skip
    assert counts[key] == 1
    assert counts[(("method", "GET"), ("replica", "r1"), ("route", "unmatched"),
                   ("status", "404"))] == 1  # fmt: skip


def test_a_crash_is_logged_as_500_and_raised(tmp_path: Path) -> None:
    api, _ = _app(tmp_path)
    assert _send(api, "GET", "/api/v1/things/boom").status_code == 500
    assert [(e["status"], e["route"]) for e in _log(tmp_path)] == [
        (500, "/api/v1/things/{thing_id}")
    ]


def _call(api: ExchangeAPI, path: str, root_path: str = "", **headers: str) -> list[Any]:
    """Call the app as a server would; return the messages it sent."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": path, "root_path": root_path,
        "headers": [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
        "query_string": b"", "client": ("127.0.0.1", 1),
    }  # fmt: skip
    asyncio.run(api(scope, receive, send))
    return sent


def test_a_client_gone_before_an_answer_is_logged_as_499(tmp_path: Path) -> None:
    api, calls = _app(tmp_path)
    assert _call(api, "/api/v1/things", x_leave="1") == []
    assert calls == ["POST"]
    assert [e["status"] for e in _log(tmp_path)] == [499]


def test_the_lean_route_is_found_under_a_route_prefix(tmp_path: Path) -> None:
    api, calls = _app(tmp_path)
    sent = _call(api, "/app/api/v1/things", root_path="/app")
    assert calls == ["POST"] and sent[0]["status"] == 201
    assert _log(tmp_path)[0]["route"] == "/api/v1/things"


def test_orders_are_counted_by_result() -> None:
    from serve_app.edge.metrics import GatewayMetrics

    metrics = GatewayMetrics("r")
    for status, code in ((201, None), (201, None), (200, None), (422, "invalid_tick"), (500, None)):
        metrics.observe("POST", "/api/v1/orders", status, 0.004, code)
    metrics.observe("GET", "/api/v1/orders", 200, 0.004, None)
    metrics.observe("BREW", "unmatched", 405, 0.001, "method_not_allowed")
    values = {
        s.labels["result"]: s.value
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name == "clob_orders_total"
    }
    assert values == {"placed": 2, "duplicate": 1, "invalid_tick": 1, "http_500": 1}
    methods = {
        s.labels["method"]
        for f in metrics.registry.collect()
        for s in f.samples
        if s.name == "clob_http_requests_total"
    }
    assert methods == {"POST", "GET", "OTHER"}


@pytest.mark.parametrize(
    ("headers", "source", "expected"),
    [
        ([], "peer", "10.1.1.1"),
        ([(b"x-forwarded-for", b"1.1.1.1, 2.2.2.2")], "forwarded_for", "2.2.2.2"),
        ([(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"3.3.3.3")], "forwarded_for",
         "3.3.3.3"),
        ([], "forwarded_for", "10.1.1.1"),
        ([(b"x-forwarded-for", b"1.1.1.1")], "peer", "10.1.1.1"),
        ([], "none", None),
    ],
)  # fmt: skip
def test_the_client_ip_comes_from_where_it_is_configured(
    headers: list[tuple[bytes, bytes]], source: Any, expected: str | None
) -> None:
    assert client_ip({"headers": headers, "client": ("10.1.1.1", 5)}, source) == expected


def test_a_quota_over_its_limit_says_when_to_retry() -> None:
    quota = Quota.of(limit=100, count=101, now_s=1_000_000_015.5)
    assert (quota.over, quota.remaining, quota.reset_epoch_s, quota.retry_after_s) == (
        True, 0, 1_000_000_020, 5,
    )  # fmt: skip
    assert dict(quota.headers())[b"retry-after"] == b"5"
    assert b"retry-after" not in dict(Quota.of(100, 100, 1_000_000_015.5).headers())


def test_auto_takes_no_client_ip_behind_serves_haproxy() -> None:
    assert resolve_client_ip("auto", {"RAY_SERVE_ENABLE_HA_PROXY": "1"}) == "none"
    assert resolve_client_ip("auto", {}) == "peer"
    assert resolve_client_ip("forwarded_for", {"RAY_SERVE_ENABLE_HA_PROXY": "1"}) == (
        "forwarded_for"
    )
