"""SQL of the settlement records (every statement on `settlements`, `settlement_attempts`,
`settlement_markets` and the trades' link to their settlement).

The batcher writes as `clob_system`; the API reads (`view`, `page`) as `clob_api`, which
sees no account id: trades through the `public_trades` view. Every write is one guarded
statement or one transaction: a settlement is created with its batch ids, its trades'
links and the market's high-water mark together, and a status moves only from the state
the caller read (`transition`), along the table of `states.py` (which the trigger of
migration 0021 enforces again). Amounts are `NUMERIC(38,0)` read as text: no `Decimal`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from actors.accounts import AccountId
from actors.settlement.planner import BatchPlan
from actors.settlement.states import UNFINISHED, SettlementStatus, check
from actors.settlement.trades import Instruction, SettleTrade, VaultKey


class RecordConflictError(RuntimeError):
    """A write refused because the records moved on (another batcher, a repeat)."""


class StaleMarkError(RecordConflictError):
    """A plan that does not start right after the market's high-water mark."""


class TradeAlreadySettledError(RecordConflictError):
    """A plan with a trade that is missing or already in a settlement."""


@dataclass(frozen=True, slots=True)
class MarketState:
    """A market's settlement state (`settlement_markets`)."""

    mark_seq: int  # every trade with seq <= mark_seq is in a settlement
    next_batch_id: int
    chain_market_id: int


@dataclass(frozen=True, slots=True)
class SettlementJob:
    """What the batcher needs of a settlement to send it (again)."""

    settlement_id: int
    market_id: int
    chain_market_id: int
    batch_id: int  # first on-chain batch id; the others follow
    batch_count: int
    status: SettlementStatus
    instructions: tuple[Instruction, ...]
    trade_count: int
    retries: int
    next_try_at: float | None  # epoch seconds
    created_at_ms: int
    first_executed_at_ms: int  # its first trade's execution, ms since the epoch
    signature: str | None = None  # the newest attempt's, or the one that landed
    slot: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One transaction sent for a settlement (`settlement_attempts`)."""

    attempt: int
    signature: str
    wire: bytes | None  # the signed bytes, sent again while the blockhash is valid
    priority_fee_micro_lamports: int
    cu_limit: int | None
    last_valid_block_height: int | None
    status: str  # sent, landed, expired or error
    error: str | None
    sent_at: datetime


def _ms(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


# -- the market's mark and batch ids -------------------------------------------------------


async def market_state(
    conn: asyncpg.Connection, market_id: int, chain_market_id: int
) -> MarketState:
    """Return a market's settlement state, creating it (mark 0, batch id 1) on first use.

    Raises:
        ValueError: The stored chain market id is another (the market's mints changed).
    """
    await conn.execute(
        "INSERT INTO settlement_markets (market_id, chain_market_id) VALUES ($1, $2) "
        "ON CONFLICT (market_id) DO NOTHING",
        market_id, chain_market_id,
    )  # fmt: skip
    row = await conn.fetchrow(
        "SELECT mark_seq, next_batch_id, chain_market_id FROM settlement_markets "
        "WHERE market_id = $1", market_id,
    )  # fmt: skip
    state = MarketState(int(row[0]), int(row[1]), int(row[2]))
    if state.chain_market_id != chain_market_id:
        raise ValueError(f"market {market_id} settles as chain market "
                         f"{state.chain_market_id}, not {chain_market_id}")  # fmt: skip
    return state


async def raise_batch_floor(conn: asyncpg.Connection, market_id: int, floor: int) -> None:
    """Make the market's next batch id at least `floor` (never lower it)."""
    await conn.execute(
        "UPDATE settlement_markets SET next_batch_id = greatest(next_batch_id, $2) "
        "WHERE market_id = $1", market_id, floor,
    )  # fmt: skip


async def trades_after(
    conn: asyncpg.Connection, market_id: int, after_seq: int, limit: int
) -> list[SettleTrade]:
    """Return up to `limit` of the market's trades with seq > `after_seq`, in seq order."""
    rows = await conn.fetch(
        """SELECT t.seq, t.maker_account_id, t.taker_account_id, t.taker_side,
                  (t.qty_lots * m.lot_size_atoms)::text AS base, t.quote_qty_atoms::text AS q,
                  t.maker_fee_atoms::text AS mf, t.taker_fee_atoms::text AS tf, t.executed_at
             FROM trades t JOIN markets m USING (market_id)
            WHERE t.market_id = $1 AND t.seq > $2 ORDER BY t.seq LIMIT $3""",
        market_id, after_seq, limit,
    )  # fmt: skip
    return [settle_trade(r) for r in rows]


def settle_trade(r: Any) -> SettleTrade:
    """Return a `trades` row (with its market's lot size as `base`) as settlement sees it."""
    return SettleTrade(
        seq=int(r["seq"]), maker=AccountId(int(r["maker_account_id"])),
        taker=AccountId(int(r["taker_account_id"])), taker_side=r["taker_side"],
        base_atoms=int(r["base"]), quote_atoms=int(r["q"]), maker_fee_atoms=int(r["mf"]),
        taker_fee_atoms=int(r["tf"]), executed_at_ms=_ms(r["executed_at"]),
    )  # fmt: skip


# -- settlements ---------------------------------------------------------------------------


def encode_instructions(instructions: Sequence[Instruction]) -> str:
    """Return the `instructions` column's JSON: `[[[account|null, side, delta], ...], ...]`."""
    return json.dumps([[[a, side, delta] for (a, side), delta in ix] for ix in instructions])


def decode_instructions(text: str) -> tuple[Instruction, ...]:
    """Return the instructions stored by `encode_instructions`."""
    out = []
    for ix in json.loads(text):
        pairs = []
        for account, side, delta in ix:
            key: VaultKey = (None if account is None else AccountId(int(account)), side)
            pairs.append((key, int(delta)))
        out.append(tuple(pairs))
    return tuple(out)


def _check_plan(plan: BatchPlan, netted: bool) -> None:
    seqs = [t.seq for t in plan.trades]
    if not seqs or seqs != sorted(set(seqs)) or (seqs[0], seqs[-1]) != (
        plan.first_seq, plan.last_seq,
    ):  # fmt: skip
        raise ValueError(f"a plan's trades must be its seq range in order: {seqs}")
    if not plan.instructions or (netted and len(plan.instructions) > len(seqs)) or (
        not netted and len(plan.instructions) != len(seqs)
    ):  # fmt: skip
        raise ValueError("a netted plan has at most one instruction per trade, an unnetted "
                         "one exactly one per trade")  # fmt: skip


_JOB = """s.settlement_id, s.market_id, s.chain_market_id, s.batch_id, s.batch_count, s.status,
    s.instructions::text AS instructions, s.trade_count, s.retries, s.next_try_at, s.created_at,
    s.signature, s.slot,
    (SELECT t.executed_at FROM trades t
      WHERE t.market_id = s.market_id AND t.seq = s.first_seq) AS first_executed_at"""


def _job(row: Any) -> SettlementJob:
    next_try = row["next_try_at"]
    return SettlementJob(
        settlement_id=int(row["settlement_id"]), market_id=int(row["market_id"]),
        chain_market_id=int(row["chain_market_id"]), batch_id=int(row["batch_id"]),
        batch_count=int(row["batch_count"]), status=SettlementStatus(row["status"]),
        instructions=decode_instructions(row["instructions"]),
        trade_count=int(row["trade_count"]), retries=int(row["retries"]),
        next_try_at=None if next_try is None else next_try.timestamp(),
        created_at_ms=_ms(row["created_at"]),
        first_executed_at_ms=_ms(row["first_executed_at"]),
        signature=row["signature"], slot=None if row["slot"] is None else int(row["slot"]),
    )  # fmt: skip


async def create(
    conn: asyncpg.Connection, market_id: int, plan: BatchPlan, *, netted: bool
) -> SettlementJob:
    """Record a closed batch as a `pending` settlement, in one transaction: take its batch
    ids, link its trades, and move the market's mark to its last trade.

    Raises:
        StaleMarkError: The plan does not take every trade after the mark, up to its last,
            (another batcher created it, or one before it, first).
        TradeAlreadySettledError: A trade of the plan is not stored or already linked.
        ValueError: The plan is malformed (a bug of the caller).
    """
    _check_plan(plan, netted)
    seqs = [t.seq for t in plan.trades]
    async with conn.transaction():
        state = await conn.fetchrow(
            "SELECT mark_seq, next_batch_id, chain_market_id FROM settlement_markets "
            "WHERE market_id = $1 FOR UPDATE", market_id,
        )  # fmt: skip
        if state is None:
            raise ValueError(f"market {market_id} has no settlement state (market_state)")
        between = await conn.fetchval(
            "SELECT count(*) FROM trades WHERE market_id = $1 AND seq > $2 AND seq <= $3",
            market_id, int(state["mark_seq"]), plan.last_seq,
        )  # fmt: skip
        if int(state["mark_seq"]) >= plan.first_seq or between != len(seqs):
            raise StaleMarkError(
                f"market {market_id}: mark {state['mark_seq']}, {between} trades up to "
                f"{plan.last_seq}; the plan has {len(seqs)} from {plan.first_seq}"
            )
        settlement_id = await conn.fetchval(
            """INSERT INTO settlements (market_id, trade_count, chain_market_id, batch_id,
                   batch_count, netted, first_seq, last_seq, instructions)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb) RETURNING settlement_id""",
            market_id, len(seqs), state["chain_market_id"], state["next_batch_id"],
            len(plan.instructions), netted, plan.first_seq, plan.last_seq,
            encode_instructions(plan.instructions),
        )  # fmt: skip
        linked = await conn.execute(
            "UPDATE trades SET settlement_id = $1 WHERE market_id = $2 "
            "AND seq = ANY($3::bigint[]) AND settlement_id IS NULL",
            settlement_id, market_id, seqs,
        )  # fmt: skip
        if int(linked.split()[-1]) != len(seqs):
            raise TradeAlreadySettledError(
                f"market {market_id}: trades {plan.first_seq}..{plan.last_seq} are not all "
                "free to settle"
            )
        await conn.execute(
            "UPDATE settlement_markets SET mark_seq = $2, next_batch_id = next_batch_id + $3 "
            "WHERE market_id = $1", market_id, plan.last_seq, len(plan.instructions),
        )  # fmt: skip
        job = await get(conn, int(settlement_id))
    assert job is not None  # created above, in this transaction
    return job


async def get(conn: asyncpg.Connection, settlement_id: int) -> SettlementJob | None:
    """Return one settlement as the batcher sees it."""
    row = await conn.fetchrow(
        f"SELECT {_JOB} FROM settlements s WHERE s.settlement_id = $1", settlement_id
    )
    return None if row is None else _job(row)


async def unfinished(conn: asyncpg.Connection, market_ids: Sequence[int]) -> list[SettlementJob]:
    """Return the markets' pending, submitted and confirmed settlements, by (market, batch
    id)."""
    rows = await conn.fetch(
        f"SELECT {_JOB} FROM settlements s WHERE s.market_id = ANY($1::int[]) "
        "AND s.status = ANY($2::text[]) ORDER BY s.market_id, s.batch_id",
        list(market_ids), sorted(s.value for s in UNFINISHED),
    )  # fmt: skip
    return [_job(r) for r in rows]


_FIELDS = frozenset({
    "signature", "slot", "last_error", "retries", "next_try_at", "cu_limit", "cu_consumed",
    "tx_bytes", "fee_lamports", "priority_fee_micro_lamports", "alerted",
})  # fmt: skip
"""Columns a transition may set besides the status and its times."""

_ON_ENTRY = {
    SettlementStatus.PENDING: "failed_at = NULL, retries = 0, next_try_at = NULL, alerted = false",
    SettlementStatus.SUBMITTED: "submitted_at = coalesce(submitted_at, now())",
    SettlementStatus.CONFIRMED: "confirmed_at = now()",
    SettlementStatus.FINALIZED: "finalized_at = now()",
    SettlementStatus.FAILED: "failed_at = now()",
}
"""What entering a state sets (the CHECKs of migration 0021 tie the times to states);
entering `pending` is the operator's retry, which starts the retries afresh."""


def _value(name: str, value: Any) -> Any:
    if name == "next_try_at" and isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)  # epoch seconds, as SettlementJob has it
    return value


async def transition(
    conn: asyncpg.Connection,
    settlement_id: int,
    old: SettlementStatus | str,
    new: SettlementStatus | str,
    **fields: Any,
) -> bool:
    """Move a settlement from `old` to `new` and set `fields` with it, if it is still in
    `old`; return whether it moved (False: another writer moved it first).

    Raises:
        IllegalTransitionError: The table does not list the change.
        ValueError: A field that is no settable column.
    """
    check(old, new)
    unknown = set(fields) - _FIELDS
    if unknown:
        raise ValueError(f"not settable by a transition: {sorted(unknown)}")
    names = sorted(fields)
    sets = ["status = $3", "updated_at = now()"]
    sets += [f"{name} = ${i}" for i, name in enumerate(names, start=4)]
    if old != new:  # staying `submitted` (a new attempt) enters nothing
        sets.append(_ON_ENTRY[SettlementStatus(new)])
    assignments = ", ".join(sets)
    async with conn.transaction():
        moved = await conn.fetchval(
            f"UPDATE settlements SET {assignments} WHERE settlement_id = $1 AND status = $2 "
            "RETURNING settlement_id",
            settlement_id, str(old), str(new), *(_value(n, fields[n]) for n in names),
        )  # fmt: skip
        if moved is not None and new == SettlementStatus.PENDING:
            await _fresh_batch_ids(conn, settlement_id)
    return moved is not None


async def _fresh_batch_ids(conn: asyncpg.Connection, settlement_id: int) -> None:
    """Give a settlement the market's next batch ids (the operator's retry): its old ids
    may have fallen out of the program's replay window meanwhile. They were never applied:
    a settlement fails only once none of its attempts can land."""
    await conn.execute(
        """WITH s AS (SELECT market_id, batch_count FROM settlements WHERE settlement_id = $1),
                m AS (UPDATE settlement_markets m
                         SET next_batch_id = m.next_batch_id + s.batch_count
                        FROM s WHERE m.market_id = s.market_id
                        RETURNING m.next_batch_id - s.batch_count AS first)
           UPDATE settlements SET batch_id = m.first FROM m WHERE settlement_id = $1""",
        settlement_id,
    )  # fmt: skip


# -- attempts ------------------------------------------------------------------------------


async def add_attempt(  # noqa: PLR0917 (one argument per column)
    conn: asyncpg.Connection,
    settlement_id: int,
    signature: str,
    wire: bytes,
    cu_price: int,
    cu_limit: int | None,
    last_valid_height: int,
) -> int:
    """Record a transaction about to be sent for a pending or submitted settlement (it
    becomes the settlement's signature); return its attempt number. Recording the same
    signature again returns its number and changes nothing.

    Raises:
        RecordConflictError: The settlement is in no state to send (or unknown).
    """
    async with conn.transaction():
        known = await conn.fetchval(
            "SELECT attempt FROM settlement_attempts WHERE settlement_id = $1 "
            "AND signature = $2", settlement_id, signature,
        )  # fmt: skip
        if known is not None:
            return int(known)
        attempt = await conn.fetchval(
            """WITH s AS (
                   UPDATE settlements SET attempts = attempts + 1, signature = $2,
                          priority_fee_micro_lamports = $4, cu_limit = $5,
                          tx_bytes = octet_length($3::bytea), updated_at = now()
                    WHERE settlement_id = $1 AND status IN ('pending', 'submitted')
                   RETURNING attempts)
               INSERT INTO settlement_attempts (settlement_id, attempt, signature, wire,
                   priority_fee_micro_lamports, cu_limit, last_valid_block_height)
               SELECT $1, s.attempts, $2, $3, $4, $5, $6 FROM s RETURNING attempt""",
            settlement_id, signature, wire, cu_price, cu_limit, last_valid_height,
        )  # fmt: skip
    if attempt is None:
        raise RecordConflictError(f"settlement {settlement_id} is not pending or submitted")
    return int(attempt)


async def mark_attempt(
    conn: asyncpg.Connection, settlement_id: int, attempt: int, status: str,
    error: str | None = None,
) -> bool:  # fmt: skip
    """Record what became of a `sent` attempt: `landed`, `expired` or `error`; return
    whether it was still `sent`."""
    if status not in ("landed", "expired", "error"):
        raise ValueError(f"an attempt ends landed, expired or error, not {status}")
    moved = await conn.fetchval(
        "UPDATE settlement_attempts SET status = $3, error = $4 WHERE settlement_id = $1 "
        "AND attempt = $2 AND status = 'sent' RETURNING attempt",
        settlement_id, attempt, status, error,
    )  # fmt: skip
    return moved is not None


async def attempts(conn: asyncpg.Connection, settlement_id: int) -> list[AttemptRow]:
    """Return a settlement's attempts, first first, with their signed bytes."""
    rows = await conn.fetch(
        "SELECT attempt, signature, wire, priority_fee_micro_lamports, cu_limit, "
        "last_valid_block_height, status, error, sent_at FROM settlement_attempts "
        "WHERE settlement_id = $1 ORDER BY attempt", settlement_id,
    )  # fmt: skip
    return [
        AttemptRow(**{**dict(r), "wire": None if r["wire"] is None else bytes(r["wire"])})
        for r in rows
    ]


async def accounts_of(conn: asyncpg.Connection, settlement_id: int) -> dict[AccountId, list[int]]:
    """Return each account of a settlement's trades (maker or taker) with its trade seqs,
    in seq order (as `clob_system`: the trades' accounts are not public)."""
    rows = await conn.fetch(
        "SELECT seq, maker_account_id, taker_account_id FROM trades "
        "WHERE settlement_id = $1 ORDER BY seq", settlement_id,
    )  # fmt: skip
    out: dict[AccountId, list[int]] = {}
    for r in rows:
        for account in dict.fromkeys((r["maker_account_id"], r["taker_account_id"])):
            out.setdefault(AccountId(int(account)), []).append(int(r["seq"]))
    return out
