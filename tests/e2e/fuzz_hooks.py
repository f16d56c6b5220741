"""Schemathesis hooks of the fuzz run (`test_fuzz.py` runs `st run` with them).

* `before_call` makes a share of the schema-valid requests valid for the exchange too
  (real markets, prices on the tick grid, quantities on the lot grid within bounds, the
  fuzzer's own order and key ids, cursors the API returned), so they reach the engine;
  and it keeps the run inside its world (never another test's market or account, never
  revoking the key the run acts with, at most `max_new_markets` new markets). Editing
  here rather than at generation is deliberate: schemathesis revalidates a case after
  `before_call`, so a rewritten case is checked as what was actually sent.
* `after_call` takes a snapshot of the state after every call (`fuzz_state`) but a
  successful read; the check `refused_request_changed_nothing` fails a 4xx answer whose
  snapshot differs from the one before it. Calls are sequential (`--workers 1`), so the
  two snapshots bracket this request and, at most, successful reads before it (which
  change nothing either: a change they made would be caught here too).
* `filter_failure` accepts one kind of failure only: `positive_data_acceptance` on a 422
  whose code is a rule no OpenAPI schema can state (`CONTEXT_CODES`).

At exit the run's figures go to `world.report_path` (JSON) for the test to read.
"""

from __future__ import annotations

import atexit
import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from tests.e2e.fuzz_state import StateProbe, differences
from tests.e2e.fuzz_world import (
    WORLD_ENV,
    FuzzMarket,
    World,
    amend_body,
    credit_body,
    order_body,
)

# 422 codes of rules that depend on data or time no static schema can know, so a
# schema-valid request can meet them: the market's grid and bounds (tick, lot, minimum
# and maximum quantity and notional, and the 2^64 - 1 atom bound at the market's
# decimals), the account's balance, the asset's total supply, whether a cursor is one
# this API issued, whether an expiry is still in the future, a market spec's fit with
# its assets (whole quote atoms per tick and lot, the decimals of an existing asset), and
# `display_qty` below `qty` (JSON Schema cannot compare two fields' numbers).
CONTEXT_CODES = frozenset({
    "invalid_tick", "invalid_lot", "invalid_qty", "invalid_price", "qty_below_minimum",
    "qty_above_maximum", "notional_below_minimum", "amount_too_large", "total_too_large",
    "insufficient_funds", "invalid_cursor", "invalid_expiry", "invalid_market_spec",
    "invalid_display_qty",
})  # fmt: skip

WORLD = World.load(Path(os.environ[WORLD_ENV]))
RNG = random.Random(WORLD.seed)


class _Oracle:
    """The state after the last call, and the verdicts awaiting their check."""

    def __init__(self) -> None:
        self.probe: StateProbe | None = None
        self.last: dict[str, Any] | None = None
        self.verdicts: dict[int, list[str]] = {}

    def snapshot(self) -> dict[str, Any]:
        if self.probe is None:  # connect at the first call, not when st imports the hooks
            self.probe = StateProbe(WORLD)
        return self.probe.snapshot()


ORACLE = _Oracle()
_orders: dict[str, str] = {}  # the fuzzer's order ids -> market symbol
_live: set[str] = set()  # those last seen live (open, partially filled, untriggered)
_LIVE = frozenset({"open", "partially_filled", "untriggered", "pending_new"})
_keys: list[str] = []  # key ids the fuzzer created
_cursors: dict[str, list[str]] = {}  # operation -> next_cursor values answered
_stats: dict[str, Any] = {
    "calls": 0, "statuses": Counter(), "by_operation": Counter(), "orders_accepted": 0,
    "refused_compared": 0, "violations": [], "accepted_context_422": Counter(),
    "new_markets": 0, "rewritten": Counter(), "engine_commands": Counter(),
}  # fmt: skip


def _positive(case: schemathesis.Case, location: ParameterLocation) -> bool:
    meta = case.meta
    if meta is None:
        return False
    component = meta.components.get(location)
    return component is not None and component.mode == GenerationMode.POSITIVE


def _rewrite(case: schemathesis.Case, location: ParameterLocation, share: float = 0.6) -> bool:
    """Return whether to make this part of the case valid (a positive one, by chance)."""
    if not (_positive(case, location) and RNG.random() < share):
        return False
    _stats["rewritten"][f"{case.operation.label} {location.value}"] += 1
    return True


def _random_phase_share(case: schemathesis.Case, share: float) -> bool:
    meta = case.meta
    if meta is None or meta.phase.name.value not in ("fuzzing", "stateful"):
        return False
    if RNG.random() >= share:
        return False
    _stats["rewritten"][f"{case.operation.label} body (schema-invalid)"] += 1
    return True


def _set_body(case: schemathesis.Case, body: dict[str, Any]) -> None:
    if isinstance(case.body, dict):
        case.body.clear()
        case.body.update(body)
    else:
        case.body = body


def _own_order() -> str | None:
    # Mostly a live order (an amend or cancel that reaches the engine), at times any.
    ids = sorted(_live) if _live and RNG.random() < 0.8 else sorted(_orders)
    return RNG.choice(ids) if ids else None


def _order_path(case: schemathesis.Case) -> None:
    if not _rewrite(case, ParameterLocation.PATH):
        return
    if RNG.random() < 0.1 and WORLD.maker_order_ids:  # another account's order: 404
        case.path_parameters["order_id"] = RNG.choice(WORLD.maker_order_ids)
    elif (order_id := _own_order()) is not None:
        case.path_parameters["order_id"] = order_id


def _market_query(case: schemathesis.Case, label: str) -> None:
    if not isinstance(case.query, dict) or not _rewrite(case, ParameterLocation.QUERY):
        return
    if "market" in case.query:
        case.query["market"] = RNG.choice(WORLD.markets).symbol
    if "cursor" in case.query:
        known = _cursors.get(label)
        if known:
            case.query["cursor"] = RNG.choice(known)
        else:
            del case.query["cursor"]
    for bound, time in (("start", "2020-01-01T00:00:00Z"), ("end", "2100-01-01T00:00:00Z")):
        if bound in case.query:
            case.query[bound] = time


def _symbol_path(case: schemathesis.Case, label: str) -> None:
    name = "market" if "{market}" in case.path else "symbol"
    if name not in case.path_parameters:
        return
    if _rewrite(case, ParameterLocation.PATH):
        case.path_parameters[name] = RNG.choice(WORLD.markets).symbol
    if "/admin/" in label and case.path_parameters[name] in WORLD.foreign_markets:
        case.path_parameters[name] = WORLD.markets[-1].symbol  # never another test's


def _new_market(case: schemathesis.Case) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    template = WORLD.markets[0]
    if _rewrite(case, ParameterLocation.BODY) and _stats["new_markets"] < WORLD.max_new_markets:
        base = f"FZN{_stats['new_markets']}"
        _set_body(case, _market_spec(template, base))
        return
    # Every other request names an existing market, so none can create one (409 at most).
    body["symbol"], body["base_asset"], body["quote_asset"] = (
        template.symbol, template.base, template.quote,
    )  # fmt: skip


def _market_spec(template: FuzzMarket, base: str) -> dict[str, Any]:
    return {
        "symbol": f"{base}-{template.quote}", "base_asset": base,
        "quote_asset": template.quote, "base_decimals": 9, "quote_decimals": 6,
        "tick_size": template.tick_size, "lot_size": template.lot_size,
        "min_qty": template.min_qty, "max_qty": template.max_qty,
    }  # fmt: skip


def _order(case: schemathesis.Case) -> None:
    if not isinstance(case.body, dict):
        return
    # Most: orders are what the exchange is for, and the engine is where state changes.
    # With a time budget each operation gets an equal slice, so a few schema-invalid
    # orders of the random phases are made valid too (schemathesis revalidates the case:
    # it is then checked as the valid order it became); the coverage phase's are kept.
    if _rewrite(case, ParameterLocation.BODY, share=0.9) or _random_phase_share(case, 0.4):
        _set_body(case, order_body(RNG, RNG.choice(WORLD.markets), case.body))
    elif case.body.get("market") in WORLD.foreign_markets:
        case.body["market"] = WORLD.markets[0].symbol


def _amend(case: schemathesis.Case) -> None:
    _order_path(case)
    market = WORLD.market(_orders.get(str(case.path_parameters.get("order_id"))))
    if market is not None and _rewrite(case, ParameterLocation.BODY):
        _set_body(case, amend_body(RNG, market))


def _credit(case: schemathesis.Case) -> None:
    if not isinstance(case.body, dict):
        return
    if _rewrite(case, ParameterLocation.BODY):
        _set_body(case, credit_body(RNG, WORLD, case.body))
    if case.body.get("account_id") in WORLD.foreign_accounts:
        case.body["account_id"] = WORLD.fuzzer.account_id


def _revoke(case: schemathesis.Case) -> None:
    if _rewrite(case, ParameterLocation.PATH) and _keys:
        case.path_parameters["key_id"] = RNG.choice(_keys)
    if case.path_parameters.get("key_id") == WORLD.fuzzer.key_id:
        case.path_parameters["key_id"] = _keys[0] if _keys else "0000000000000000"


def _own_balance(case: schemathesis.Case) -> None:
    if _rewrite(case, ParameterLocation.PATH):
        case.path_parameters["account_id"] = WORLD.fuzzer.account_id


_REWRITES = {
    "POST /api/v1/orders": _order,
    "PATCH /api/v1/orders/{order_id}": _amend,
    "PUT /api/v1/orders/{order_id}": _amend,
    "GET /api/v1/orders/{order_id}": _order_path,
    "DELETE /api/v1/orders/{order_id}": _order_path,
    "POST /api/v1/admin/markets": _new_market,
    "POST /api/v1/admin/credits": _credit,
    "DELETE /api/v1/keys/{key_id}": _revoke,
    "GET /api/v1/users/{account_id}/balance": _own_balance,
}


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    """Make the case valid for the exchange (by chance) and keep it in the fuzz world."""
    label = case.operation.label
    rewrite = _REWRITES.get(label)
    if rewrite is not None:
        rewrite(case)
    elif "{symbol}" in case.path or "{market}" in case.path:
        _symbol_path(case, label)
    if label in ("GET /api/v1/orders", "DELETE /api/v1/orders", "GET /api/v1/trades") or (
        "trades" in label
    ):
        _market_query(case, label)


_ENGINE = frozenset({
    "POST /api/v1/orders", "PATCH /api/v1/orders/{order_id}", "PUT /api/v1/orders/{order_id}",
    "DELETE /api/v1/orders/{order_id}", "DELETE /api/v1/orders",
})  # fmt: skip


def _learn_order(order: Any) -> None:
    if not isinstance(order, dict) or "order_id" not in order:
        return
    _orders[order["order_id"]] = order["market"]
    if order.get("status") in _LIVE:
        _live.add(order["order_id"])
    else:
        _live.discard(order["order_id"])


def _track(label: str, status: int, body: Any) -> None:
    if not isinstance(body, dict):
        return
    if label == "POST /api/v1/orders" and status in (200, 201):
        _stats["orders_accepted"] += 1
    if status in (200, 201) and "/orders" in label:
        if label in _ENGINE:  # an order command the market matched and journaled
            _stats["engine_commands"][label] += 1
        for order in body.get("orders", [body]):
            _learn_order(order)
        _live.difference_update(body.get("cancelled", []))
    if label == "POST /api/v1/keys" and status == 201:
        _keys.append(body["key_id"])
    elif label == "POST /api/v1/admin/markets" and status == 201:
        _stats["new_markets"] += 1
    if body.get("next_cursor"):
        _cursors.setdefault(label, []).append(body["next_cursor"])


@schemathesis.hook
def after_call(
    context: schemathesis.HookContext, case: schemathesis.Case, response: schemathesis.Response
) -> None:
    """Count the call, learn ids from its answer, and compare the state across a 4xx."""
    label, status = case.operation.label, response.status_code
    _stats["calls"] += 1
    _stats["statuses"][str(status)] += 1
    try:
        body = response.json()
    except ValueError:
        body = None
    code = body.get("code", "") if isinstance(body, dict) and status >= 400 else ""
    _stats["by_operation"][f"{label} {status} {code}".rstrip()] += 1
    _track(label, status, body)
    if case.method.upper() == "GET" and status < 400:
        return  # a read changes nothing (a change would show at the next comparison)
    state = ORACLE.snapshot()
    if 400 <= status < 500 and ORACLE.last is not None:
        _stats["refused_compared"] += 1
        changed = differences(ORACLE.last, state)
        if changed:
            ORACLE.verdicts[id(case)] = changed
            _stats["violations"].append(
                {"request": f"{case.method.upper()} {response.request.url}",
                 "body": _text(response.request.body), "status": status,
                 "answer": response.text[:500], "changed": changed}
            )  # fmt: skip
    ORACLE.last = state


def _text(body: object) -> str | None:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")[:2000]
    return None if body is None else str(body)[:2000]


@schemathesis.check
def refused_request_changed_nothing(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Fail a 4xx answer after which the exchange's state was not what it was before."""
    changed = ORACLE.verdicts.pop(id(case), None)
    if changed:
        raise AssertionError(
            f"the request was refused ({response.status_code}) but changed the state:\n"
            + "\n".join(changed)
        )
    return None


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext,
    failure: Any,
    case: schemathesis.Case,
    response: schemathesis.Response,
) -> bool:
    """Drop `positive_data_acceptance` failures of rules no schema can state (see above)."""
    if getattr(failure, "code", None) != "ST202" or response.status_code != 422:
        return True
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return True
    if code in CONTEXT_CODES:
        _stats["accepted_context_422"][code] += 1
        return False
    return True


@atexit.register
def _report() -> None:
    Path(WORLD.report_path).write_text(json.dumps(_stats, indent=1, sort_keys=True))
    if ORACLE.probe is not None:
        ORACLE.probe.close()
