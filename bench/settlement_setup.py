"""The exchange of `settlement_bench.py`: the trading core on Ray, the custody actors on the
embedded chain, and markets whose accounts are funded by real deposits.

Everything goes the product's way except the speed of the setup: the vaults are
registered (`register_vault`, signed by the operator) six to a transaction and the
deposits (plain SPL transfers from one wallet into the vaults, what a user sends) ten to a
transaction, sent concurrently, instead of one transaction each. The custody deposit
listener then credits every deposit to the ledger as it would any user's, and is stopped
once they are (`pause_deposits`): it reads every new signature of every vault, settle
transactions included, which on two cores would take CPU from the settlement measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import ray
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from actors.accounts import AccountId
from actors.bootstrap import start_core
from actors.chain.client import ChainClient
from actors.chain.keys import ChainKeys
from actors.chain.program import ix_register_vault
from actors.chain.program_idl import PROGRAM_ID
from actors.contracts import OrderRequest
from actors.custody.actor import DEPOSITS_ACTOR, CustodyConfig, start_custody
from actors.custody.setup import send_and_confirm
from serve_app.demo_deposit import fund_wallet, transfer
from tests.support.market_kit import limit, new_accounts

SHARDS = 2
LOT = 10
DECIMALS = 0
"""Of both assets: a lot is 10 atoms, a trade's notional 10 quote atoms per tick and lot."""
PRICE_TICKS = 1_000
BASE_ATOMS = 10**10
"""Each account's base deposit: a thousand times what its trades can move."""
QUOTE_ATOMS = 10**12
REGISTERS_PER_TX = 6
TRANSFERS_PER_TX = 10
SENDS_AT_ONCE = 8
BURST_ORDERS = 200
"""Orders per market call in a burst (100 trades)."""
SOL = 10**9
CREDIT_TIMEOUT_S = 300.0


@dataclass
class Stack:
    """The running exchange: database, chain, Ray actors and the custody configuration."""

    url: str
    rpc_url: str
    namespace: str
    keys: ChainKeys
    controller: Any
    chain_actor: Any
    deposits_actor: Any
    custody: CustodyConfig


@dataclass
class BenchMarket:
    """A market of the bench, its funded accounts and its actor."""

    symbol: str
    market_id: int
    accounts: list[int]
    handle: Any


def start_stack(url: str, rpc_url: str, namespace: str, keys: ChainKeys, keys_dir: str) -> Stack:
    """Start the controller, two ledger shards and the custody actors (after `ray.init`)."""
    controller = start_core(url, SHARDS, namespace)
    custody = CustodyConfig(url, rpc_url, namespace, keys_dir, depth=4, poll_s=0.1,
                            shard_count=SHARDS)  # fmt: skip
    chain_actor, deposits_actor = start_custody(custody)
    return Stack(url, rpc_url, namespace, keys, controller, chain_actor, deposits_actor, custody)


async def open_market(stack: Stack, tag: str, accounts_n: int) -> BenchMarket:
    """Create a market of two new assets and `accounts_n` accounts, each funded in both by
    a credited deposit."""
    _, stack.deposits_actor = start_custody(stack.custody)
    base, quote = f"BB{tag}", f"QQ{tag}"
    symbol = f"{base}-{quote}"
    await stack.controller.create_market.remote({
        "symbol": symbol, "base_asset": base, "quote_asset": quote, "lot_size": LOT,
        "maker_fee_bps": -5, "taker_fee_bps": 20, "base_decimals": DECIMALS,
        "quote_decimals": DECIMALS,
    })  # fmt: skip
    mints = {k: Pubkey.from_string(v) for k, v in (await stack.chain_actor.sync.remote()).items()}
    accounts = await new_accounts(stack.url, accounts_n)
    async with ChainClient(stack.rpc_url) as client:
        for key in (stack.keys.payer, stack.keys.operator):
            await client.request_airdrop(key.pubkey(), 100 * SOL)
        addresses: list[str] = []
        for asset, atoms in ((base, BASE_ATOMS), (quote, QUOTE_ATOMS)):
            await _register(client, stack.keys.operator, mints[asset], accounts)
            found = await _gather(
                [stack.chain_actor.deposit_address.remote(a, asset) for a in accounts]
            )
            addresses += found
            await _deposit(client, stack.keys, mints[asset], found, atoms)
    await _until_credited(stack.url, addresses)
    conn = await asyncpg.connect(stack.url)
    try:
        market_id = int(await conn.fetchval("SELECT market_id FROM markets WHERE symbol = $1",
                                            symbol))  # fmt: skip
    finally:
        await conn.close()
    handle = ray.get_actor(f"market:{symbol}", namespace=stack.namespace)
    return BenchMarket(symbol, market_id, accounts, handle)


async def pause_deposits(stack: Stack) -> None:
    """Stop the deposit listener (`open_market` starts it again)."""
    ray.kill(stack.deposits_actor, no_restart=True)

    async def gone() -> bool:
        try:
            ray.get_actor(DEPOSITS_ACTOR, namespace=stack.namespace)
        except ValueError:
            return True
        return False

    await wait_until("the deposit listener's name to be freed", gone, 30)


async def _gather(calls: Sequence[Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(SENDS_AT_ONCE)

    async def one(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def _send_all(
    client: ChainClient, payer: Keypair, instructions: Sequence[Instruction], per_tx: int,
    signers: Sequence[Keypair] = (),
) -> None:  # fmt: skip
    chunks = [instructions[i : i + per_tx] for i in range(0, len(instructions), per_tx)]
    await _gather([send_and_confirm(client, payer, chunk, signers) for chunk in chunks])


async def _register(
    client: ChainClient, operator: Keypair, mint: Pubkey, accounts: Sequence[int]
) -> None:
    ixs = [ix_register_vault(PROGRAM_ID, operator=operator.pubkey(), mint=mint,
                             account_id=AccountId(a)) for a in accounts]  # fmt: skip
    await _send_all(client, operator, ixs, REGISTERS_PER_TX)


async def _deposit(
    client: ChainClient, keys: ChainKeys, mint: Pubkey, addresses: Sequence[str], atoms: int
) -> None:
    wallet = Keypair()
    source = await fund_wallet(client, keys, wallet, mint, atoms * len(addresses))
    moves = [transfer(wallet, source, mint, Pubkey.from_string(a), atoms=atoms, decimals=DECIMALS)
             for a in addresses]  # fmt: skip
    await _send_all(client, wallet, moves, TRANSFERS_PER_TX)


async def _until_credited(url: str, addresses: Sequence[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + CREDIT_TIMEOUT_S
        while True:
            credited = await conn.fetchval("SELECT count(*) FROM deposits WHERE address = ANY($1)"
                                           " AND status = 'credited'", list(addresses))  # fmt: skip
            if credited >= len(addresses):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(addresses) - credited} deposits not credited")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


def trade_orders(pairs: Sequence[tuple[int, int, str, int]], tag: str) -> list[OrderRequest]:
    """Return two orders per (maker, taker, maker's side, lots): a resting limit order and
    the opposite order at its price that fills it whole, so each pair is one trade."""
    out = []
    for i, (maker, taker, side, lots) in enumerate(pairs):
        other = "sell" if side == "buy" else "buy"
        out.append(limit(maker, f"{tag}m{i}", side, PRICE_TICKS, lots))
        out.append(limit(taker, f"{tag}t{i}", other, PRICE_TICKS, lots))
    return out


async def submit(market: BenchMarket, orders: Sequence[OrderRequest], rate: float) -> None:
    """Submit the trades' orders to the market actor, one call at a time: as fast as it
    takes them (`rate` 0: `BURST_ORDERS` a call), or `rate` trades a second (a call every
    0.1 s)."""
    per_call = BURST_ORDERS if rate <= 0 else 2 * max(1, round(rate / 10))
    started = time.monotonic()
    for i, start in enumerate(range(0, len(orders), per_call)):
        if rate > 0:
            await asyncio.sleep(max(0.0, started + i * per_call / 2 / rate - time.monotonic()))
        await market.handle.submit.remote(list(orders[start : start + per_call]))


async def wait_until(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    """Poll `check` every 0.1 s; return False (and say so) if it stays false too long."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            print(f"  timed out after {timeout_s:.0f} s waiting for {what}")
            return False
        await asyncio.sleep(0.1)
    return True
