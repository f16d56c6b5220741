"""Order bodies become typed market commands, and a new order's terms digest is the one
existing orders were stored with (a retry compares its digest with the stored one)."""

from __future__ import annotations

from typing import Any

import pytest

from actors.contracts import AmendOrder, PlaceOrder
from actors.engine import MarketSpec, OrderKind, PostOnly, Side, StpMode, TimeInForce
from serve_app.gateway.commands import amend_command, new_order_command, order_digest
from serve_app.gateway.models import OrderAmend, OrderCreate

SPEC = MarketSpec(
    symbol="SOL-USDC", base_asset="SOL", quote_asset="USDC", base_decimals=9, quote_decimals=6,
    tick_size=10_000, lot_size=1_000_000, maker_fee_bps=10, taker_fee_bps=20,
)  # fmt: skip

# Digests computed by the gateway before its commands were typed (from the codec-form
# dicts it then built): stored with existing orders, so they must not change.
DIGESTS = [
    ({"side": "sell", "price": "150", "qty": "2"}, "68d1bbab9e32519558aaeeb6535d27b6"),
    ({"side": "buy", "kind": "market", "qty": "1.5"}, "6adee2fc6978ad007a76d4021130fb0c"),
    ({"side": "buy", "kind": "market", "quote_qty": "300", "tif": "ioc"},
     "6367a6c765198e06fdf178a54b930dc6"),
    ({"side": "sell", "kind": "market", "qty": "2", "tif": "fok"},
     "b507bb19ca896ee9efe22853ea56cf06"),
    ({"side": "buy", "kind": "limit", "price": "99.5", "qty": "3", "tif": "gtd",
      "expire_at": "2030-01-01T00:00:00Z", "post_only": "slide", "stp": "cancel_both",
      "display_qty": "1"}, "3d2c242b186c65287c6d8d93080bd403"),
    ({"side": "sell", "kind": "stop_limit", "price": "90", "stop_price": "95", "qty": "2",
      "tif": "ioc"}, "d6f9b515ef1ec1c36e4285f637e7ddb7"),
    ({"side": "buy", "kind": "stop_market", "stop_price": "160", "qty": "1",
      "post_only": "reject"}, "f0d2107ea933295bb75904ca5b4700c8"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "digest"), DIGESTS)
def test_the_terms_digest_is_unchanged_for_stored_orders(body: dict[str, Any], digest: str) -> None:
    command = new_order_command(SPEC, OrderCreate(market=SPEC.symbol, **body), "any-id")
    assert order_digest(SPEC.symbol, command) == digest


def test_an_order_body_becomes_a_typed_command_in_ticks_and_lots() -> None:
    body = OrderCreate(market=SPEC.symbol, side="buy", price="99.5", qty="3", tif="gtd",
                       expire_at="2030-01-01T00:00:00Z", post_only="slide", stp="cancel_both",
                       display_qty="1")  # fmt: skip
    command = new_order_command(SPEC, body, "o-1")
    assert command == PlaceOrder(
        "o-1", Side.BUY, OrderKind.LIMIT, qty=3_000, price=9_950, tif=TimeInForce.GTD,
        expire_at=1_893_456_000_000, post_only=PostOnly.SLIDE, display_qty=1_000,
        stp=StpMode.CANCEL_BOTH,
    )  # fmt: skip
    assert type(command.side) is Side and type(command.tif) is TimeInForce
    # A market order's time in force is ioc unless fok; another order id, the same terms.
    market = OrderCreate(market=SPEC.symbol, side="sell", kind="market", qty="2")
    first, second = (new_order_command(SPEC, market, oid) for oid in ("a", "b"))
    assert first.tif is TimeInForce.IOC and first.qty == 2_000 and first.price is None
    assert order_digest(SPEC.symbol, first) == order_digest(SPEC.symbol, second)


def test_an_amend_body_becomes_a_typed_command() -> None:
    assert amend_command(SPEC, OrderAmend(qty="1.5"), "o-1") == AmendOrder("o-1", qty=1_500)
    assert amend_command(SPEC, OrderAmend(price="2"), "o-1") == AmendOrder("o-1", price=200)
