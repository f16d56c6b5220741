"""The OpenAPI schema of an order states the combinations the API accepts: every body the
schema takes passes the model and the engine's combination checks, and each combination
they refuse is outside the schema (`serve_app.gateway.order_schema`)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from serve_app.openapi import build_openapi

_LIMIT = {"market": "SOL-USDC", "side": "buy", "price": "1", "qty": "1"}
_STOP_MARKET = {"market": "SOL-USDC", "side": "buy", "kind": "stop_market", "stop_price": "1"}
_GTD = {"tif": "gtd", "expire_at": "2030-01-01T00:00:00Z"}


def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(build_openapi()["components"]["schemas"][name])


@pytest.mark.parametrize(
    "body",
    [
        _LIMIT,
        {**_LIMIT, "kind": "limit", "tif": "ioc"},
        {**_LIMIT, **_GTD, "post_only": "slide", "display_qty": "0.5"},
        {**_LIMIT, "kind": "stop_limit", "stop_price": "2"},
        {"market": "SOL-USDC", "side": "sell", "kind": "market", "qty": "1", "tif": "fok"},
        {"market": "SOL-USDC", "side": "buy", "kind": "market", "quote_qty": "10"},
        {**_STOP_MARKET, "quote_qty": "10", **_GTD},
        {**_STOP_MARKET, "qty": "1", "tif": None, "expire_at": None},
    ],
)
def test_the_schema_takes_each_shape_of_order(body: dict[str, Any]) -> None:
    assert _validator("OrderCreate").is_valid(body)


@pytest.mark.parametrize(
    "body",
    [
        {**_LIMIT, "quote_qty": "1"},  # both sizes
        {k: v for k, v in _LIMIT.items() if k != "price"},  # missing_price
        {**_LIMIT, "stop_price": "1"},  # a stop price on a limit order
        {**_LIMIT, "tif": "gtd"},  # gtd without expire_at
        {**_LIMIT, "expire_at": "2030-01-01T00:00:00Z"},  # expire_at without gtd
        {**_LIMIT, "tif": "ioc", "post_only": "reject"},  # post-only on an ioc
        {**_LIMIT, "price": "0"},  # zero
        {"market": "SOL-USDC", "side": "buy", "kind": "market", "qty": "1", "price": "1"},
        {"market": "SOL-USDC", "side": "buy", "kind": "market", "qty": "1", **_GTD},
        {"market": "SOL-USDC", "side": "sell", "kind": "market", "quote_qty": "10"},
        {"market": "SOL-USDC", "side": "buy", "kind": "market", "quote_qty": "1", "tif": "fok"},
        {"market": "SOL-USDC", "side": "buy", "kind": "market", "qty": "1", "tif": "fok"},
        {"market": "SOL-USDC", "side": "buy", "kind": "market", "qty": "1", "display_qty": "1"},
        {**_STOP_MARKET, "qty": "1", "tif": "ioc"},  # a stop rests until triggered
        {**_STOP_MARKET, "qty": "1", "post_only": "reject"},
        {k: v for k, v in _STOP_MARKET.items() if k != "stop_price"} | {"qty": "1"},
        {**_LIMIT, "price": "1" * 41},  # 41 digits
    ],
)
def test_the_schema_refuses_what_the_api_refuses(body: dict[str, Any]) -> None:
    assert not _validator("OrderCreate").is_valid(body)


@pytest.mark.parametrize(
    ("body", "valid"),
    [({"price": "1"}, True), ({"qty": "1", "price": None}, True), ({}, False),
     ({"price": None, "qty": None}, False), ({"qty": "0.000"}, False)],
)  # fmt: skip
def test_an_amend_gives_a_price_or_a_quantity(body: dict[str, Any], valid: bool) -> None:
    assert _validator("OrderAmend").is_valid(body) is valid
