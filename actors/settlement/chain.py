"""`RpcSettleChain`: the batcher's chain port (`ports.SettleChain`) over the JSON-RPC client
and the settle transactions of `tx.py`.

A settlement is simulated before it is sent: the simulation gives its compute units (the
transaction then carries a limit of those units plus a margin) and tells a batch that
cannot pay yet (`InsufficientVaultBalance`) from one that can. It is then sent without
preflight, so that a refusal by the program lands on chain with its error, which the
monitor reads; a re-send of the same bytes that already landed is no error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence

from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from actors.accounts import AccountId
from actors.chain.client import AlreadyProcessedError, ChainClient, program_error_code
from actors.chain.program import (
    REPLAY_WINDOW_IDS,
    decode_market,
    error_name,
    market_pda,
    vault_pda,
)
from actors.custody.setup import ensure_vault
from actors.settlement.batcher import vault_keys
from actors.settlement.monitor import Seen
from actors.settlement.ports import MarketInfo, Oversized, Prepared, Refused
from actors.settlement.records import SettlementJob
from actors.settlement.tables import MarketTables
from actors.settlement.trades import VaultKey
from actors.settlement.tx import (
    MAX_COMPUTE_UNITS,
    MAX_TX_BYTES,
    SettleContext,
    build_settle_tx,
    compute_unit_limit,
    fits,
    vault_of,
)

RecordVault = Callable[[MarketInfo, AccountId, str, str], Awaitable[None]]
"""Records a vault the batcher registered: (market, account, side, address)."""


def highest_applied(base: int, contains: Callable[[int], bool]) -> int:
    """Return the highest batch id a replay window has applied, or `base - 1` if none
    (ids below `base` are refused for ever: never reuse them either)."""
    for id_ in range(base + REPLAY_WINDOW_IDS - 1, base - 1, -1):
        if contains(id_):
            return id_
    return base - 1


class RpcSettleChain:
    """The batcher's chain port.

    Args:
        client: The JSON-RPC client.
        program_id: The exchange program.
        operator: The hot operator key (signs and pays).
        record_vault: Records a vault registered here (the deposit addresses).
        tables: The markets' address lookup tables (None: transactions name every account).
    """

    def __init__(
        self, client: ChainClient, program_id: Pubkey, operator: Keypair,
        record_vault: RecordVault, tables: MarketTables | None = None,
    ) -> None:  # fmt: skip
        self._client, self._program_id, self._operator = client, program_id, operator
        self._record_vault, self._tables = record_vault, tables
        self._known: set[Pubkey] = set()

    def context(self, market: MarketInfo) -> SettleContext:
        """Return what every settle transaction of the market needs."""
        return SettleContext(program_id=self._program_id, operator=self._operator,
                             chain_market_id=market.chain_market_id,
                             base_mint=Pubkey.from_string(market.base_mint),
                             quote_mint=Pubkey.from_string(market.quote_mint))  # fmt: skip

    def fits(self, market: MarketInfo) -> Callable[[Sequence[Sequence[VaultKey]]], bool]:
        """Return the planner's byte check for the market: the real signed size."""
        ctx = self.context(market)
        if self._tables is not None:
            return self._tables.fits(ctx, market.market_id)
        return lambda vault_sets: fits(ctx, vault_sets)

    async def open_market(self, market: MarketInfo) -> None:
        """Learn the market's lookup table before its batches are planned (their byte
        check counts it)."""
        if self._tables is not None:
            await self._tables.load(market.market_id)

    async def block_height(self) -> int:
        """Return the newest block height."""
        return await self._client.block_height("processed")

    async def statuses(self, signatures: Sequence[str]) -> Mapping[str, Seen | None]:
        """Return each signature's status (the program's error by name)."""
        keys = [Signature.from_string(s) for s in signatures]
        found = await self._client.signature_statuses(keys)
        out: dict[str, Seen | None] = {}
        for signature, status in zip(signatures, found, strict=True):
            if status is None:
                out[signature] = None
                continue
            error = None
            if status.err is not None:
                code = program_error_code(status.err)
                error = (None if code is None else error_name(code)) or str(status.err)
            out[signature] = Seen(status.slot, status.commitment, error)
        return out

    async def applied_floor(self, market: MarketInfo) -> int:
        """Return the highest batch id the market's replay window holds applied (or below
        its base); 0 when the market is not on chain yet."""
        pda = market_pda(self._program_id, market.chain_market_id)
        data = await self._client.account_data(pda, "processed")
        if data is None:
            return 0
        window = decode_market(data).batches
        return highest_applied(window.base, window.contains)

    async def ensure_vaults(self, market: MarketInfo, keys: Sequence[VaultKey]) -> None:
        """Register the users' vaults the batch pays that do not exist yet."""
        for account, side in keys:
            if account is None:
                continue  # the fee vaults exist with their assets
            mint = Pubkey.from_string(market.base_mint if side == "base" else market.quote_mint)
            vault = vault_pda(self._program_id, mint, account)
            if vault in self._known:
                continue
            await ensure_vault(self._client, self._program_id, self._operator, mint, account)
            await self._record_vault(market, account, side, str(vault))
            self._known.add(vault)

    async def prepare(
        self, market: MarketInfo, job: SettlementJob, cu_price: int
    ) -> Prepared | Refused | Oversized:
        """Simulate the settlement, then sign it with its compute-unit limit; one too large
        for a transaction is neither simulated nor signed again (`Oversized`)."""
        ctx = self.context(market)
        if self._tables is not None:  # the table holds the batch's vaults first
            vaults = [vault_of(ctx, key) for key in vault_keys(job)]
            ctx = await self._tables.context(ctx, market.market_id, vaults)
        blockhash = await self._client.latest_blockhash("confirmed")
        # Simulated with the highest limit: the same bytes as the final transaction.
        probe = self._build(ctx, job, blockhash.blockhash, MAX_COMPUTE_UNITS, cu_price)
        size = len(bytes(probe))
        if size > MAX_TX_BYTES:  # a node refuses it; the batcher cuts the settlement
            return Oversized(size)
        simulation = await self._client.simulate(probe)
        if simulation.err is not None:
            return Refused(simulation.program_error or str(simulation.err))
        consumed = simulation.units_consumed or 0
        limit = compute_unit_limit(consumed)
        tx = self._build(ctx, job, blockhash.blockhash, limit, cu_price)
        wire = bytes(tx)
        return Prepared(str(tx.signatures[0]), wire, blockhash.last_valid_block_height, limit,
                        cu_price, consumed, len(wire))  # fmt: skip

    def _build(
        self, ctx: SettleContext, job: SettlementJob, blockhash: Hash, cu_limit: int,
        cu_price: int,
    ) -> VersionedTransaction:  # fmt: skip
        return build_settle_tx(ctx, batch_id=job.batch_id, instructions=job.instructions,
                               blockhash=blockhash, cu_limit=cu_limit,
                               cu_price=cu_price)  # fmt: skip

    async def send(self, wire: bytes) -> None:
        """Send signed bytes (again); a copy that already landed is no error."""
        with contextlib.suppress(AlreadyProcessedError):
            await self._client.send_transaction(VersionedTransaction.from_bytes(wire),
                                                skip_preflight=True)  # fmt: skip
