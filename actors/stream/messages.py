"""The messages of the real-time stream: what markets and ledger shards publish to Redis for
the gateway's WebSocket fan-out (`serve_app/ws`).

Redis holds no data of record: a message lost here costs a client a resync, never an
order or an atom. Everything is in integer units (ticks, lots, atoms, milliseconds); the
gateway turns them into the decimal strings of the public protocol (docs/websocket.md).

Channels (Redis pub/sub):

- `stream:md:{market}` gets one `MarketBatch` per committed batch of the market, in
  journal order, **including batches that changed neither the book nor the trades**, so
  that consecutive messages chain: `U` = the previous message's `u` + 1. A gap (a message
  lost in Redis, a publisher queue that overflowed, a market restart whose first batches
  were replayed rather than published) shows as `U` != previous `u` + 1, and the gateway
  then resyncs its copy of the book from the market actor (`MarketActor.l2`, whose
  `last_update_id` is in the same id space).
- `stream:acct:{account_id}` gets an `AccountBatch` per committed batch that concerns the
  account (its orders changed or filled) from the market, one per change of its
  balances from its ledger shard, and one per change of status of a settlement of its
  trades from the settlement batcher (`settlement_messages`).

**Book update ids are engine event seqs.** The engine numbers every event of a market
(`MatchingEngine.seq`: gap-free, durable, the same after a replay). A batch's `U` is the
engine seq before it + 1 and `u` the engine seq after it, so ids never repeat across
restarts and REST's `GET /orderbook` (`last_update_id` = the engine seq its levels were
read at) shares the space.

Encoding: msgspec JSON (`encode` / `decode_*` below), field names kept short on purpose
only where a message is per level or per trade.
"""

from __future__ import annotations

from typing import Literal

import msgspec

MD_CHANNEL = "stream:md:{market}"
ACCOUNT_CHANNEL = "stream:acct:{account_id}"


def md_channel(market: str) -> str:
    """Return the public channel of a market."""
    return MD_CHANNEL.format(market=market)


def account_channel(account_id: int) -> str:
    """Return the private channel of an account."""
    return ACCOUNT_CHANNEL.format(account_id=account_id)


class Level(msgspec.Struct, array_like=True, frozen=True):
    """A price level after the batch: its visible quantity (an iceberg's slice only) and
    its number of orders. `qty` 0 means the level is gone."""

    price: int  # ticks
    qty: int  # lots, absolute
    count: int


class Trade(msgspec.Struct, array_like=True, frozen=True):
    """One fill, as the public tape shows it. `id` is the fill's engine event seq: the
    per-market trade id that REST's trades (`seq`) use too."""

    id: int
    price: int  # ticks
    qty: int  # lots
    taker_side: Literal["buy", "sell"]
    ts: int  # ms since the epoch (the matching command's time)
    maker_order_id: str
    taker_order_id: str


class MarketBatch(msgspec.Struct, frozen=True):
    """What a committed batch changed in a market's public data.

    Attributes:
        market: The market's symbol.
        U: The first engine event seq of the batch (the previous batch's `u` + 1).
        u: The last engine event seq of the batch (the engine's seq after it).
        E: When the batch's journal transaction committed, ms since the epoch (wall clock
           of the market's host; the fan-out bench measures latency from it).
        bids: Every bid level the batch touched, absolute after the batch, any order.
        asks: Every ask level the batch touched, likewise.
        trades: The batch's fills, in order.
    """

    market: str
    U: int
    u: int
    E: int
    bids: list[Level] = []
    asks: list[Level] = []
    trades: list[Trade] = []


class OrderState(msgspec.Struct, frozen=True):
    """An order's whole state after a change, in the orders table's units (the gateway
    shows it like REST's `OrderView`, plus the average price).

    `status` and `reason` take the values REST shows (`open`, `untriggered`,
    `partially_filled`, `filled`, `cancelled`, `expired`, `rejected`). Quantities in lots,
    prices in ticks, amounts in quote atoms, times in ms since the epoch. `u` is the engine
    event seq of the last event that changed it.
    """

    market: str
    order_id: str
    client_order_id: str | None
    side: str
    kind: str
    tif: str
    status: str
    reason: str | None
    price: int | None
    stop_price: int | None
    qty: int | None
    quote_qty: int | None  # a market buy's budget, tick-lots
    display_qty: int | None
    post_only: str | None
    stp: str
    expire_at: int | None
    open_qty: int
    filled_qty: int
    filled_quote: int
    fee: int
    created_at: int | None
    updated_at: int | None
    u: int


class AccountFill(msgspec.Struct, frozen=True):
    """One side of a trade, as its account sees it."""

    market: str
    trade_id: int
    order_id: str
    side: Literal["buy", "sell"]
    liquidity: Literal["maker", "taker"]
    price: int  # ticks
    qty: int  # lots
    quote: int  # atoms
    fee: int  # atoms; negative: a rebate
    ts: int


class Balance(msgspec.Struct, frozen=True):
    """An asset's balance of an account after a change, in atoms (what REST's
    `GET /balances` shows for it at that moment)."""

    asset: str
    available: int
    locked: int


class SettlementState(msgspec.Struct, frozen=True):
    """A settlement's status after a change, as one of its accounts sees it: `trades` are
    the seqs (per-market trade ids) of that account's trades in it (as maker or taker)."""

    settlement_id: int
    market: str
    status: str  # pending, submitted, confirmed, finalized or failed
    signature: str | None
    slot: int | None
    trades: list[int]
    ts: int  # ms since the epoch: when the status changed


class AccountBatch(msgspec.Struct, frozen=True):
    """What one batch (of a market), one ledger change (of a shard) or one settlement's
    change of status (of a settlement batcher) changed for an account. `E` as in
    `MarketBatch` (for a settlement: the change's `ts`)."""

    account_id: int
    E: int
    orders: list[OrderState] = []
    fills: list[AccountFill] = []
    balances: list[Balance] = []
    settlements: list[SettlementState] = []


def settlement_messages(  # noqa: PLR0917 (a settlement state's fields)
    account_trades: dict[int, list[int]],
    settlement_id: int,
    market: str,
    status: str,
    signature: str | None,
    slot: int | None,
    ts: int,
) -> list[tuple[str, bytes]]:
    """Return the stream messages of a settlement's change of status: one `AccountBatch`
    per account of its trades (`records.accounts_of`: account -> its trade seqs), each
    with that account's trades only, as (channel, encoded message) for a `Sink`."""
    return [
        (account_channel(account), encode(AccountBatch(account, E=ts, settlements=[
            SettlementState(settlement_id, market, status, signature, slot, list(seqs), ts)
        ])))
        for account, seqs in sorted(account_trades.items())
    ]  # fmt: skip


_encoder = msgspec.json.Encoder()
_market_decoder = msgspec.json.Decoder(MarketBatch)
_account_decoder = msgspec.json.Decoder(AccountBatch)


def encode(message: MarketBatch | AccountBatch) -> bytes:
    """Return a message's wire form."""
    return _encoder.encode(message)


def decode_market(data: bytes) -> MarketBatch:
    """Return a `MarketBatch` from its wire form (raises `msgspec.DecodeError`)."""
    return _market_decoder.decode(data)


def decode_account(data: bytes) -> AccountBatch:
    """Return an `AccountBatch` from its wire form (raises `msgspec.DecodeError`)."""
    return _account_decoder.decode(data)
