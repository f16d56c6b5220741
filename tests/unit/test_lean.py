"""The lean `POST /api/v1/orders` route: what it answers itself and what it hands to FastAPI.

The route's collaborators (`authorize`, `orders.place`, the replica's core) are replaced by
recorders here; the e2e tests run it against the real exchange (`tests/e2e`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from starlette.types import Receive, Send

from serve_app import lean
from serve_app.auth import Principal
from serve_app.errors import ApiError
from serve_app.gateway.models import OrderCreate, OrderView

ORDER = {"market": "SOL-USDC", "side": "buy", "price": "101.25", "qty": "2"}
CALLER = Principal(account_id=7, key_id="k1", scopes=("read", "trade"))
VIEW = OrderView(
    order_id="o-1", market="SOL-USDC", side="buy", kind="limit", tif="gtc", price="101.25",
    qty="2", status="open", open_qty="2", filled_qty="0", filled_quote="0", fee="0",
)  # fmt: skip


class Recorder:
    """Stands in for the route's collaborators and for FastAPI; records what reached them."""

    def __init__(self, outcome: tuple[int, OrderView] | ApiError = (201, VIEW)) -> None:
        self.outcome = outcome
        self.keys: list[str | None] = []
        self.placed: list[OrderCreate] = []
        self.fallback_bodies: list[bytes] = []

    async def authorize(self, core: Any, raw_key: str | None, context: Any = None) -> Principal:
        self.keys.append(raw_key)
        return CALLER

    async def place(self, core: Any, caller: Principal, body: OrderCreate) -> tuple[int, Any]:
        assert caller is CALLER
        self.placed.append(body)
        if isinstance(self.outcome, ApiError):
            raise self.outcome
        return self.outcome

    async def fallback(self, scope: Any, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.fallback_bodies.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"fastapi"})


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(lean, "authorize", recorder.authorize)
    monkeypatch.setattr(lean.orders, "place", recorder.place)
    monkeypatch.setattr(lean, "replica_core", object)
    return recorder


def _post(
    recorder: Recorder,
    chunks: Sequence[bytes],
    headers: Sequence[tuple[bytes, bytes]] = ((b"content-type", b"application/json"),),
    disconnect: bool = False,
    query: bytes = b"",
) -> tuple[int | None, bytes]:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        messages[-1:] = [{"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/orders", "headers": headers,
             "query_string": query}  # fmt: skip
    asyncio.run(lean.post_orders(scope, receive, send, recorder.fallback))
    status = sent[0]["status"] if sent else None
    return status, b"".join(m.get("body", b"") for m in sent[1:])


def test_a_valid_order_is_placed_and_answered_as_fastapi_would(recorder: Recorder) -> None:
    key = (b"x-api-key", b"k1.secret")
    status, body = _post(
        recorder, [json.dumps(ORDER).encode()], [(b"content-type", b"application/json"), key]
    )
    assert status == 201
    assert json.loads(body) == VIEW.model_dump(mode="json")
    assert recorder.placed == [OrderCreate.model_validate(ORDER)]
    assert recorder.keys == ["k1.secret"]
    assert recorder.fallback_bodies == []


def test_a_repeated_header_counts_with_its_first_value_as_in_fastapi(
    recorder: Recorder,
) -> None:
    headers = [(b"x-api-key", b"first"), (b"x-api-key", b"second")]
    assert _post(recorder, [json.dumps(ORDER).encode()], headers)[0] == 201
    assert recorder.keys == ["first"]


def test_a_body_in_several_chunks_and_no_content_type_is_read_whole(recorder: Recorder) -> None:
    raw = json.dumps(ORDER).encode()
    status, _ = _post(recorder, [raw[:10], raw[10:25], raw[25:]], headers=[])
    assert status == 201
    assert recorder.placed == [OrderCreate.model_validate(ORDER)]
    assert recorder.keys == [None]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"market": "SOL-USDC", "side": "buy", "qty": "1", "colour": "red"}',  # unknown field
        b'{"market": "SOL-USDC", "side": "buy"',  # malformed JSON
        b'{"market": "SOL-USDC", "side": "buy", "qty": "1", "quote_qty": "5"}',  # model rule
        b"",
    ],
)
def test_a_body_that_does_not_validate_goes_to_fastapi_unchanged(
    recorder: Recorder, raw: bytes
) -> None:
    status, body = _post(recorder, [raw[:5], raw[5:]])
    assert (status, body) == (299, b"fastapi")
    assert recorder.fallback_bodies == [raw]
    assert recorder.placed == [] and recorder.keys == []


@pytest.mark.parametrize("content_type", [b"text/plain", b"application/vnd.clob+json"])
def test_another_media_type_goes_to_fastapi(recorder: Recorder, content_type: bytes) -> None:
    raw = json.dumps(ORDER).encode()
    status, _ = _post(recorder, [raw], [(b"content-type", content_type)])
    assert status == 299
    assert recorder.fallback_bodies == [raw]
    assert recorder.placed == []


def test_a_query_string_goes_to_fastapi(recorder: Recorder) -> None:
    """FastAPI's route refuses unknown query parameters (`serve_app.http.contract`)."""
    raw = json.dumps(ORDER).encode()
    status, _ = _post(recorder, [raw], query=b"colour=red")
    assert status == 299
    assert recorder.fallback_bodies == [raw]
    assert recorder.placed == []


def test_json_with_a_charset_is_taken(recorder: Recorder) -> None:
    raw = json.dumps(ORDER).encode()
    status, _ = _post(recorder, [raw], [(b"content-type", b"Application/JSON; charset=utf-8")])
    assert status == 201


def test_a_body_over_the_limit_reaches_fastapi_whole(recorder: Recorder) -> None:
    # A valid order padded with whitespace: under the limit the lean route would place it.
    padding = b" " * (lean.MAX_BODY_BYTES // 2)
    chunks = [padding, padding, padding, json.dumps(ORDER).encode()]
    status, _ = _post(recorder, chunks)
    assert status == 299
    assert recorder.fallback_bodies == [b"".join(chunks)]
    assert recorder.placed == []


def test_a_refusal_answers_the_error_shape(recorder: Recorder) -> None:
    recorder.outcome = ApiError(422, "insufficient_funds", "not enough USDC", {"asset": "USDC"})
    status, body = _post(recorder, [json.dumps(ORDER).encode()])
    assert status == 422
    assert json.loads(body) == {
        "code": "insufficient_funds",
        "message": "not enough USDC",
        "details": {"asset": "USDC"},
    }


def test_a_client_gone_before_its_body_is_not_answered(recorder: Recorder) -> None:
    assert _post(recorder, [b'{"market": ', b"x"], disconnect=True) == (None, b"")
    assert recorder.placed == [] and recorder.fallback_bodies == []


def test_exchange_api_tries_lean_routes_by_method_and_path() -> None:
    app = lean.ExchangeAPI()
    seen: list[str] = []

    @app.post("/y")
    async def fastapi_y() -> dict[str, str]:
        seen.append("fastapi")
        return {}

    async def lean_y(scope: Any, receive: Any, send: Any, fallback: Any) -> None:
        seen.append("lean")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app.lean_routes[("POST", "/y")] = lean_y

    async def call(method: str, path: str) -> int:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {
            "type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "headers": [], "http_version": "1.1",
            "scheme": "http", "server": ("t", 80), "client": ("c", 1), "app": app,
        }  # fmt: skip
        await app(scope, receive, send)
        return int(sent[0]["status"])

    assert asyncio.run(call("POST", "/y")) == 204
    assert asyncio.run(call("GET", "/y")) == 405  # FastAPI's router: POST only
    assert seen == ["lean"]
    del app.lean_routes[("POST", "/y")]
    assert asyncio.run(call("POST", "/y")) == 200
    assert seen == ["lean", "fastapi"]


def test_the_gateway_app_serves_post_orders_leanly() -> None:
    from serve_app.app import API_PREFIX, api

    assert isinstance(api, lean.ExchangeAPI)
    assert api.lean_routes == {("POST", f"{API_PREFIX}/orders"): lean.post_orders}
