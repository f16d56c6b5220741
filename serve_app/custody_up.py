"""Custody in `clob up`: the exchange program on the embedded chain, and the custody actors
(`custody:chain`, `custody:deposits`) started after the trading core, configured from the
settings' `[custody]` section and the key files.

Against a real chain (`SOLANA_RPC_URL` set) nothing is loaded or minted here: the operator
deploys the program and records each asset's mint (`assets.mint`); docs/custody.md,
"Running it".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.chain.keys import configured_key_paths
from actors.chain.program_idl import PROGRAM_SO, program_id_from
from actors.custody.actor import CustodyConfig, start_custody
from actors.infra.errors import ClobError
from actors.infra.settings import Settings
from actors.settlement.actor import SettlementConfig, start_settlement
from actors.settlement.config import BatcherConfig

Progress = Callable[[str], None]
SYNC_TIMEOUT_S = 120.0
"""How long `clob up` waits for the exchange's accounts on chain (first start: a few
transactions per asset and market)."""


class CustodyUpError(ClobError):
    """Custody cannot start (e.g. the program is not built); one line for the user."""


def chain_programs(settings: Settings) -> list[str]:
    """Return the programs the embedded chain must load: the exchange program at its id.

    Raises:
        CustodyUpError: The embedded chain is in use and the program is not built.
    """
    if settings.solana_rpc_url is not None:
        return []  # a real chain: the operator deployed the program
    if not PROGRAM_SO.is_file():
        raise CustodyUpError(
            f"the exchange program is not built ({PROGRAM_SO}): run `make program`"
        )
    return [f"{program_id_from(settings.program_id)}={PROGRAM_SO}"]


def custody_config(settings: Settings, database_url: str, rpc_url: str) -> CustodyConfig:
    """Return the custody actors' configuration from the settings.

    Paths are made absolute: the actors run in Ray workers, whose working directory is
    not the caller's.
    """
    custody = settings.custody
    keys_dir = (settings.keys_dir or settings.data_dir / "keys").resolve()
    return CustodyConfig(
        database_url=database_url,
        rpc_url=rpc_url,
        namespace=settings.ray.namespace,
        keys_dir=str(keys_dir),
        key_paths={
            role: str(path.resolve()) for role, path in configured_key_paths(settings).items()
        },
        program_id=settings.program_id or "",
        depth=custody.confirmations,
        poll_s=custody.poll_s,
        cap_atoms=dict(custody.cap_atoms),
        default_cap_whole=custody.default_cap_whole,
        window_slots=custody.window_slots,
        withdrawal_wait_s=custody.withdrawal_wait_s,
        embedded=settings.solana_rpc_url is None,
    )


def start(config: CustodyConfig, progress: Progress) -> Any | None:
    """Start (or find) the custody actors and wait for the exchange's accounts on chain.

    Returns:
        The chain actor's handle, or None when its first sync failed (the actors keep
        retrying in their loop; `clob status` shows their last error).
    """
    import ray

    progress("starting custody (deposit listener, chain actor)")
    chain, _ = start_custody(config)
    try:
        mints = ray.get(chain.sync.remote(), timeout=SYNC_TIMEOUT_S)
    except Exception as exc:  # reported, not fatal: trading runs without custody
        cause = getattr(exc, "cause", None) or exc  # a RayTaskError carries the actor's
        progress(f"custody: the chain is not set up yet ({type(cause).__name__}: "
                 f"{str(cause)[:200]}); see `clob status`")  # fmt: skip
        return None
    progress(f"custody up: {len(mints)} assets on chain, {config.depth} confirmations")
    return chain


def settlement_config(
    settings: Settings, custody: CustodyConfig, redis_url: str | None
) -> SettlementConfig:
    """Return the settlement batchers' configuration from the settings."""
    s = settings.settlement
    batcher = BatcherConfig(netting=s.netting, max_trades=s.max_trades, interval_s=s.interval_s,
                            max_in_flight=s.max_in_flight, base_fee=s.priority_fee,
                            max_instructions=s.max_instructions)  # fmt: skip
    return SettlementConfig(custody=custody, redis_url=redis_url, batchers=s.batchers,
                            batcher=batcher, poll_s=s.poll_s, lookup_tables=s.lookup_tables,
                            markets=tuple(s.markets))  # fmt: skip


def start_batchers(config: SettlementConfig, progress: Progress) -> list[Any]:
    """Start (or find) the settlement batchers; return their handles."""
    progress(f"starting settlement ({config.batchers} batcher(s), "
             f"{'netted' if config.batcher.netting else 'one settle per trade'})")  # fmt: skip
    return start_settlement(config)
