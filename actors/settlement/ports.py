"""The ports of the batcher's pass (`batcher.py`): the settlement records, the chain and
the stream. The actor gives the real adapters (`records.py` over asyncpg, `chain.py` over
JSON-RPC, a `RedisSink`); the unit tests give in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from actors.settlement.monitor import Seen
from actors.settlement.planner import BatchPlan
from actors.settlement.records import AttemptRow, MarketState, SettlementJob
from actors.settlement.trades import SettleTrade, VaultKey


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """A market as the batcher needs it.

    Attributes:
        market_id: The database's id.
        symbol: Its symbol.
        chain_market_id: Its id on chain (`actors.chain.program.chain_market_id`).
        base_mint: The base asset's mint (base58).
        quote_mint: The quote asset's mint (base58).
    """

    market_id: int
    symbol: str
    chain_market_id: int
    base_mint: str
    quote_mint: str


@dataclass(frozen=True, slots=True)
class Prepared:
    """A signed settlement transaction, ready to send.

    Attributes:
        signature: Its signature (base58).
        wire: Its signed bytes.
        last_valid_height: The last block height its blockhash is valid for.
        cu_limit: The compute-unit limit it carries.
        cu_price: The compute-unit price it carries (micro-lamports).
        cu_consumed: What the simulation consumed.
        tx_bytes: Its size.
    """

    signature: str
    wire: bytes
    last_valid_height: int
    cu_limit: int
    cu_price: int
    cu_consumed: int
    tx_bytes: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The simulation refused the transaction.

    Attributes:
        error: The program's error name (or the runtime's error).
    """

    error: str


@dataclass(frozen=True, slots=True)
class Oversized:
    """The signed transaction would exceed `tx.MAX_TX_BYTES`: it is never simulated,
    recorded or sent.

    Attributes:
        tx_bytes: Its size.
    """

    tx_bytes: int


class SettlementStore(Protocol):
    """The settlement records (`records.py`)."""

    async def market_state(self, market_id: int, chain_market_id: int) -> MarketState: ...

    async def raise_batch_floor(self, market_id: int, floor: int) -> None: ...

    async def trades_after(
        self, market_id: int, after_seq: int, limit: int
    ) -> list[SettleTrade]: ...

    async def create(self, market_id: int, plan: BatchPlan, netted: bool) -> SettlementJob: ...

    async def unfinished(self, market_ids: Sequence[int]) -> list[SettlementJob]: ...

    async def attempts(self, settlement_id: int) -> list[AttemptRow]: ...

    async def add_attempt(self, settlement_id: int, tx: Prepared) -> int: ...

    async def attempt_failed(self, settlement_id: int, attempt: int, error: str) -> None: ...

    async def transition(self, settlement_id: int, old: str, new: str, **fields: Any) -> bool: ...

    async def accounts_of(self, settlement_id: int) -> dict[int, list[int]]: ...

    async def cut(self, settlement_id: int) -> int | None: ...


class SettleChain(Protocol):
    """The chain, as the batcher uses it (`chain.py`)."""

    async def block_height(self) -> int: ...

    async def statuses(self, signatures: Sequence[str]) -> Mapping[str, Seen | None]: ...

    async def applied_floor(self, market: MarketInfo) -> int: ...

    async def open_market(self, market: MarketInfo) -> None: ...

    async def ensure_vaults(self, market: MarketInfo, keys: Sequence[VaultKey]) -> None: ...

    async def prepare(
        self, market: MarketInfo, job: SettlementJob, cu_price: int
    ) -> Prepared | Refused | Oversized: ...

    async def send(self, wire: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A settlement's new status, as its accounts are told.

    Attributes:
        status: The new status.
        signature: The transaction (the one sent, or the one that landed), if any.
        slot: Where it landed, once it did.
    """

    status: str
    signature: str | None = None
    slot: int | None = None


class Publisher(Protocol):
    """Tells the accounts of a settlement about its status (WebSocket `settlements`)."""

    def publish(
        self, market: MarketInfo, job: SettlementJob, change: StatusChange,
        accounts: Mapping[int, list[int]],
    ) -> None: ...  # fmt: skip
