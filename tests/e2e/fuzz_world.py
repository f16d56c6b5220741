"""The fuzz run's world: its markets and accounts, and valid values drawn from them.

The schemathesis run (`test_fuzz.py`) sees this world through its hooks
(`fuzz_hooks.py`), in the `st` process; the world travels there as a JSON file named by
`CLOB_FUZZ_WORLD`. Values are drawn with a `random.Random` seeded from the run's seed, so
a run is reproduced by its seed.

Every fuzz market trades assets of its own (`FZ*`), so nothing the fuzzer does moves the
balances or the supply of an asset another test uses.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

WORLD_ENV = "CLOB_FUZZ_WORLD"

KINDS = ("limit", "market", "stop_limit", "stop_market")
TIFS = ("gtc", "ioc", "fok", "gtd")
STPS = ("none", "cancel_newest", "cancel_oldest", "cancel_both", "decrement_and_cancel")
MID_TICKS = 10_000  # the fuzz markets' orders cluster around 10,000 ticks, so they cross
PRICE_BAND_TICKS = 25  # limit prices within this many ticks of the mid
MAX_LOTS_FACTOR = 20  # quantities up to this many times a market's minimum


@dataclass(frozen=True)
class FuzzMarket:
    """A market the fuzzer trades in, with its grid (decimal strings, whole units)."""

    symbol: str
    base: str
    quote: str
    tick_size: str
    lot_size: str
    min_qty: str
    max_qty: str

    def price(self, ticks: int) -> str:
        """Return `ticks` ticks as a price string."""
        return str(Decimal(self.tick_size) * ticks)

    def qty(self, lots: int) -> str:
        """Return `lots` lots as a quantity string."""
        return str(Decimal(self.lot_size) * lots)

    def min_lots(self) -> int:
        """Return the market's minimum quantity in lots."""
        return int(Decimal(self.min_qty) / Decimal(self.lot_size))


@dataclass(frozen=True)
class FuzzAccount:
    """An account of the fuzz run and its API key."""

    account_id: int
    key: str

    @property
    def key_id(self) -> str:
        """Return the public half of the key."""
        return self.key.split(".", 1)[0]


@dataclass(frozen=True)
class World:
    """Everything the hooks need: where the exchange is and what it holds.

    `fuzzer` is the account the run acts as; `maker` rests orders the fuzzer's orders can
    fill against (its order ids are the fuzzer's "another account's order": 404).
    `foreign_accounts` and `foreign_markets` are the other tests' (the run must not
    touch them); `max_new_markets` bounds the markets the run may create (each is a Ray
    actor process).
    """

    url: str
    database_url: str
    redis_url: str
    admin_token: str
    seed: int
    fuzzer: FuzzAccount
    maker: FuzzAccount
    markets: list[FuzzMarket]
    maker_order_ids: list[str]
    foreign_accounts: list[int]
    foreign_markets: list[str]
    max_new_markets: int
    report_path: str

    def save(self, path: Path) -> None:
        """Write the world as JSON."""
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> World:
        """Read a world written by `save`."""
        raw = json.loads(path.read_text())
        raw["fuzzer"] = FuzzAccount(**raw["fuzzer"])
        raw["maker"] = FuzzAccount(**raw["maker"])
        raw["markets"] = [FuzzMarket(**m) for m in raw["markets"]]
        return cls(**raw)

    def market(self, symbol: object) -> FuzzMarket | None:
        """Return the fuzz market of a symbol, if it is one."""
        return next((m for m in self.markets if m.symbol == symbol), None)


def _choose(rng: random.Random, value: object, allowed: tuple[str, ...]) -> str:
    return value if isinstance(value, str) and value in allowed else rng.choice(allowed)


def _tif(rng: random.Random, kind: str, side: str, generated: object) -> str | None:
    # Stops rest until triggered (no ioc/fok); a market order never rests (no gtd), and a
    # market buy is held by a quote budget (no fok).
    allowed = {"limit": TIFS, "stop_limit": ("gtc", "gtd"), "stop_market": ("gtc", "gtd")}
    choices = allowed.get(kind, ("ioc",) if side == "buy" else ("ioc", "fok"))
    if generated is None and rng.random() < 0.5:
        return None
    return _choose(rng, generated, choices)


def order_body(rng: random.Random, market: FuzzMarket, generated: dict[str, Any]) -> dict[str, Any]:
    """Return a valid order for `market`, keeping what it can of a generated one.

    Kind, side, tif, stp and client order id come from `generated` when they fit;
    prices land on the tick grid near the mid, quantities on the lot grid within the
    market's bounds, so the order reaches the engine (and often crosses).
    """
    kind = _choose(rng, generated.get("kind"), KINDS)
    side = _choose(rng, generated.get("side"), ("buy", "sell"))
    body: dict[str, Any] = {"market": market.symbol, "side": side, "kind": kind}
    tif = _tif(rng, kind, side, generated.get("tif"))
    if tif is not None:
        body["tif"] = tif
    if tif == "gtd":  # far enough ahead that nothing expires during the run
        body["expire_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    if kind in ("limit", "stop_limit"):
        body["price"] = market.price(MID_TICKS + rng.randint(-PRICE_BAND_TICKS, PRICE_BAND_TICKS))
    if kind in ("stop_limit", "stop_market"):
        body["stop_price"] = market.price(MID_TICKS + rng.randint(-5, 5))
    lots = rng.randint(market.min_lots(), market.min_lots() * MAX_LOTS_FACTOR)
    if kind in ("market", "stop_market") and side == "buy" and tif != "fok" and rng.random() < 0.3:
        body["quote_qty"] = str(Decimal(market.price(MID_TICKS)) * Decimal(market.qty(lots)))
    else:
        body["qty"] = market.qty(lots)
    if kind == "limit" and tif in (None, "gtc", "gtd") and rng.random() < 0.2:
        body["post_only"] = rng.choice(("reject", "slide"))
    if kind in ("limit", "stop_limit") and lots > 1 and rng.random() < 0.2:
        body["display_qty"] = market.qty(rng.randint(1, lots - 1))
    body["stp"] = _choose(rng, generated.get("stp"), STPS)
    client_order_id = generated.get("client_order_id")
    if isinstance(client_order_id, str):
        body["client_order_id"] = client_order_id
    return body


def amend_body(rng: random.Random, market: FuzzMarket) -> dict[str, Any]:
    """Return a valid amend for an order of `market`: a new price, quantity or both."""
    body: dict[str, Any] = {}
    choice = rng.randrange(3)
    if choice != 1:
        body["price"] = market.price(MID_TICKS + rng.randint(-PRICE_BAND_TICKS, PRICE_BAND_TICKS))
    if choice != 0:
        lots = rng.randint(market.min_lots(), market.min_lots() * MAX_LOTS_FACTOR)
        body["qty"] = market.qty(lots)
    return body


def credit_body(rng: random.Random, world: World, generated: dict[str, Any]) -> dict[str, Any]:
    """Return a valid test credit to a fuzz account in a fuzz asset."""
    market = rng.choice(world.markets)
    body = {
        "account_id": rng.choice((world.fuzzer.account_id, world.maker.account_id)),
        "asset": rng.choice((market.base, market.quote)),
        "amount": str(rng.randint(1, 1000)),
    }
    if isinstance(generated.get("reference"), str):
        body["reference"] = generated["reference"]
    return body
