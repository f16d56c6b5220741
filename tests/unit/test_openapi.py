"""The committed `docs/openapi.json` is the document the app serves (regenerate on change)."""

from __future__ import annotations

from pathlib import Path

from serve_app.openapi import build_openapi, render_openapi

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text() == render_openapi(), (
        "docs/openapi.json is out of date: run "
        "`.venv/bin/python -m serve_app.openapi > docs/openapi.json`"
    )


def test_every_api_route_documents_its_response_model() -> None:
    document = build_openapi()
    for path, methods in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in methods.items():
            content = operation["responses"].get("200", operation["responses"].get("201", {}))
            assert "content" in content, f"{method.upper()} {path} has no response schema"


def test_authenticated_routes_declare_the_api_key_scheme() -> None:
    document = build_openapi()
    orders = document["paths"]["/api/v1/orders"]["post"]
    assert {"ApiKey": []} in orders["security"]
    admin = document["paths"]["/api/v1/admin/markets"]["post"]
    assert {"AdminToken": []} in admin["security"]


# Every status each route can answer (docs/api.md, "Errors"): 400 malformed JSON and 415 a
# body that is not JSON (routes with a body), 401/403/429 (an API key), 403 (the admin
# token), 404/409/503 as the route's work allows, 422 everywhere (unknown query
# parameters are refused on every route).
_KEY = {"401", "403", "422", "429"}
_BODY = {"400", "415", "422"}
_ADMIN = {"403", "422"}
EXPECTED_STATUSES = {
    ("post", "/api/v1/orders"): {"200", "201", "404", "409", "503"} | _KEY | _BODY,
    ("get", "/api/v1/orders"): {"200", "404", "503"} | _KEY,
    ("delete", "/api/v1/orders"): {"200", "404", "503"} | _KEY,
    ("get", "/api/v1/orders/{order_id}"): {"200", "404", "503"} | _KEY,
    ("patch", "/api/v1/orders/{order_id}"): {"200", "404", "409", "503"} | _KEY | _BODY,
    ("put", "/api/v1/orders/{order_id}"): {"200", "404", "409", "503"} | _KEY | _BODY,
    ("delete", "/api/v1/orders/{order_id}"): {"200", "404", "409", "503"} | _KEY,
    ("get", "/api/v1/balances"): {"200", "503"} | _KEY,
    ("get", "/api/v1/users/{account_id}/balance"): {"200", "503"} | _KEY,
    ("get", "/api/v1/trades"): {"200", "404", "503"} | _KEY,
    ("get", "/api/v1/markets"): {"200", "422"},
    ("get", "/api/v1/markets/{symbol}"): {"200", "404", "422"},
    ("get", "/api/v1/markets/{symbol}/orderbook"): {"200", "404", "422", "503"},
    ("get", "/api/v1/markets/{symbol}/trades"): {"200", "404", "422"},
    ("get", "/api/v1/orderbook/{market}"): {"200", "404", "422", "503"},
    ("get", "/api/v1/trades/{market}"): {"200", "404", "422"},
    ("post", "/api/v1/admin/markets"): {"201", "409", "503"} | _ADMIN | _BODY,
    ("post", "/api/v1/admin/markets/{symbol}/halt"): {"200", "404", "503"} | _ADMIN,
    ("post", "/api/v1/admin/markets/{symbol}/resume"): {"200", "404", "503"} | _ADMIN,
    ("post", "/api/v1/admin/credits"): {"200", "404", "409", "503"} | _ADMIN | _BODY,
    ("post", "/api/v1/admin/markets/{symbol}/recover"): {"200", "404", "503"} | _ADMIN,
    ("get", "/api/v1/system/status"): {"200"} | _ADMIN,
    ("get", "/api/v1/admin/settlements"): {"200", "404"} | _ADMIN,
    ("post", "/api/v1/admin/settlements/{settlement_id}/retry"): {"200", "404", "409"} | _ADMIN,
    ("get", "/api/v1/settlements/{settlement_id}"): {"200", "404", "422"},
    ("get", "/api/v1/keys"): {"200"} | _KEY,
    ("post", "/api/v1/keys"): {"201", "409"} | _KEY | _BODY,
    ("delete", "/api/v1/keys/{key_id}"): {"200", "404"} | _KEY,
    ("post", "/api/v1/withdrawal-addresses"): {"201"} | _KEY | _BODY,
    ("get", "/api/v1/withdrawal-addresses"): {"200"} | _KEY,
    ("delete", "/api/v1/withdrawal-addresses/{address}"): {"200", "404"} | _KEY,
    ("post", "/api/v1/withdrawals"): {"201", "404", "503"} | _KEY | _BODY,
    ("get", "/api/v1/withdrawals"): {"200"} | _KEY,
    ("get", "/api/v1/withdrawals/{withdrawal_id}"): {"200", "404"} | _KEY,
    ("post", "/api/v1/withdrawals/{withdrawal_id}/confirm"): {"200", "404", "409", "503"}
    | _KEY
    | _BODY,
    ("get", "/api/v1/deposits"): {"200"} | _KEY,
    ("get", "/api/v1/reserves"): {"200", "422", "503"},
    ("get", "/api/v1/deposit-address"): {"200", "404", "409", "503"} | _KEY,
}


def test_every_route_lists_every_status_it_can_answer_with_the_error_shape() -> None:
    document = build_openapi()
    found = {
        (method, path): set(operation["responses"])
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if path.startswith("/api/v1/")
    }
    assert found == EXPECTED_STATUSES
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for (method, path), statuses in found.items():
        responses = document["paths"][path][method]["responses"]
        for status in statuses - {"200", "201"}:
            assert responses[status]["content"]["application/json"]["schema"] == error, (
                method, path, status,
            )  # fmt: skip


def test_an_order_gives_exactly_one_of_qty_and_quote_qty_in_the_schema() -> None:
    schema = build_openapi()["components"]["schemas"]["OrderCreate"]
    for shape in schema["anyOf"]:
        sizes = [f for f in ("qty", "quote_qty") if f in shape["required"]]
        assert len(sizes) == 1
        other = "quote_qty" if sizes == ["qty"] else "qty"
        assert shape["properties"][other] == {"type": "null"}
