"""The fields of an order that fit together, stated in its OpenAPI schema.

`OrderCreate` validates its combinations in code (`_combinations`) and the engine refuses
the rest (`invalid_command`, `missing_price`, ...); this module states the same rules in
the schema, as an `anyOf` of the shapes an order can take (kind x time in force x sizing),
so a client or a fuzzer reading the document knows them. A field a shape does not take
must be absent or null there. What no schema can state is left to the answer: the
market's grid and bounds, the funds, `display_qty` below `qty`, an expiry in the future.
"""

from __future__ import annotations

from typing import Any

_NULL: dict[str, Any] = {"type": "null"}
_STRING: dict[str, Any] = {"type": "string"}

# Time-in-force groups: a resting order may be gtc (the default) or gtd (with expire_at),
# a limit order also ioc or fok; a market order never rests (gtc reads as ioc; no gtd);
# a stop rests until triggered, so it is never ioc or fok.
_TIFS: dict[str, list[list[str | None]]] = {
    "limit": [["gtc", None], ["gtd"], ["ioc", "fok"]],
    "market": [["gtc", "ioc", "fok", None]],
    "stop_limit": [["gtc", None], ["gtd"]],
    "stop_market": [["gtc", None], ["gtd"]],
}
_PRICED = ("limit", "stop_limit")
_STOPS = ("stop_limit", "stop_market")
_BUDGETED = ("market", "stop_market")  # may give a quote budget (buy only) instead of qty


def _field(allowed: bool, required: bool = False) -> dict[str, Any]:
    return _STRING if required else ({} if allowed else _NULL)


def _shape(kind: str, tifs: list[str | None], budget: bool, buy: bool) -> dict[str, Any]:
    if budget or (kind == "market" and buy):  # a quote budget (the market adds one to a
        tifs = [t for t in tifs if t != "fok"]  # market buy) is never fill-or-kill
    gtd = tifs == ["gtd"]
    properties: dict[str, Any] = {
        "kind": {"const": kind},
        "tif": {"const": "gtd"} if gtd else {"enum": tifs},
        "expire_at": _STRING if gtd else _NULL,
        "price": _field(False, required=kind in _PRICED),
        "stop_price": _field(False, required=kind in _STOPS),
        "qty": _NULL if budget else _STRING,
        "quote_qty": _STRING if budget else _NULL,
        "post_only": _field(kind == "limit" and "ioc" not in tifs),
        "display_qty": _field(kind in _PRICED),
    }
    required = [name for name, rule in properties.items() if rule is _STRING]
    if budget or kind == "market":
        properties["side"] = {"const": "buy" if buy else "sell"}
    if kind != "limit":  # no kind means a limit order
        required.append("kind")
    if gtd:
        required.append("tif")
    return {"properties": {k: v for k, v in properties.items() if v}, "required": required}


def order_shapes() -> dict[str, Any]:
    """Return the `anyOf` of every shape an order can take, for `OrderCreate`'s schema."""
    shapes = [
        _shape(kind, tifs, budget, buy)
        for kind, groups in _TIFS.items()
        for tifs in groups
        for budget in ((False, True) if kind in _BUDGETED else (False,))
        for buy in ((True, False) if kind == "market" and not budget else (True,))
    ]
    return {"anyOf": shapes}


def amend_shapes() -> dict[str, Any]:
    """Return the rule of `OrderAmend`: a price, a quantity or both (null counts as absent)."""
    return {
        "anyOf": [
            {"required": ["price"], "properties": {"price": _STRING}},
            {"required": ["qty"], "properties": {"qty": _STRING}},
        ]
    }
