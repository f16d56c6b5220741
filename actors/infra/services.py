"""Resolve the backing services: configured URLs, or embedded servers started on demand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from actors.chain.embedded import EmbeddedChain
from actors.infra.embedded import EmbeddedPostgres, EmbeddedRedis
from actors.infra.settings import Settings

Progress = Callable[[str], None]


@dataclass
class Services:
    """The URLs in use, and which embedded servers this call started (not merely reused)."""

    database_url: str
    redis_url: str
    started: list[str] = field(default_factory=list)


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    """Return the embedded PostgreSQL handle for these settings."""
    return EmbeddedPostgres(
        settings.data_dir, settings.embedded.postgres_port, settings.embedded.database
    )


def embedded_redis(settings: Settings) -> EmbeddedRedis:
    """Return the embedded Redis handle for these settings."""
    return EmbeddedRedis(settings.data_dir, settings.embedded.redis_port)


def embedded_chain(settings: Settings, programs: Sequence[str] = ()) -> EmbeddedChain:
    """Return the embedded chain handle for these settings.

    Args:
        settings: The configuration.
        programs: Programs to load besides `embedded.solana_programs`, each
            `<program id>=<path to .so>` (`clob up` passes the exchange program).
    """
    embedded = settings.embedded
    return EmbeddedChain(
        settings.data_dir, embedded.solana_port, embedded.solana_slot_ms,
        [*programs, *embedded.solana_programs],
    )  # fmt: skip


def ensure_chain(
    settings: Settings, progress: Progress = lambda _: None, programs: Sequence[str] = ()
) -> tuple[str, bool]:
    """Return the Solana JSON-RPC URL: `SOLANA_RPC_URL`, else the embedded chain's.

    Args:
        settings: The configuration.
        progress: Called with a short line before a slow step.
        programs: Programs the embedded chain loads when this call starts it (a chain
            already running keeps what it loaded at its start).

    Returns:
        The URL, and whether this call started the embedded chain (not merely reused it).
    """
    if settings.solana_rpc_url is not None:
        return settings.solana_rpc_url, False
    chain = embedded_chain(settings, programs)
    started = chain.running_pid_port() is None
    if started:
        progress("starting the embedded Solana chain")
    return chain.start(), started


def ensure_services(settings: Settings, progress: Progress = lambda _: None) -> Services:
    """Use the configured URLs, starting the embedded server for each one left unset.

    Args:
        settings: The configuration.
        progress: Called with a short line before each slow step.

    Returns:
        The URLs to use and the names of the embedded servers this call started; a server
        already running in the data directory is reused and is not listed, so the caller
        does not stop a server it did not start.
    """
    started = []
    database_url = settings.database_url
    if database_url is None:
        postgres = embedded_postgres(settings)
        if postgres.running_pid_port() is None:
            progress("starting embedded PostgreSQL")
            started.append("postgres")
        database_url = postgres.start()
    redis_url = settings.redis_url
    if redis_url is None:
        cache = embedded_redis(settings)
        if cache.running_pid_port() is None:
            progress("starting embedded Redis")
            started.append("redis")
        redis_url = cache.start()
    return Services(database_url, redis_url, started)


def stop_embedded(settings: Settings, only: list[str] | None = None) -> list[str]:
    """Stop the embedded servers of this data directory; return the names stopped.

    Args:
        settings: The configuration naming the data directory.
        only: Stop just these (`"postgres"`, `"redis"`, `"solana"`); None stops all.
    """
    stopped = []
    if (only is None or "solana" in only) and embedded_chain(settings).stop():
        stopped.append("solana")
    if (only is None or "redis" in only) and embedded_redis(settings).stop():
        stopped.append("redis")
    if (only is None or "postgres" in only) and embedded_postgres(settings).stop():
        stopped.append("postgres")
    return stopped
