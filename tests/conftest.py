"""Session fixtures: real PostgreSQL and Redis, never mocks.

With `DATABASE_URL` / `REDIS_URL` set, the tests use those servers (each session creates,
and afterwards drops, a database of its own). Otherwise the project's embedded servers are
started in a temporary data directory, exactly as `clob up` starts them, and stopped at
the end of the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from solders.keypair import Keypair

from actors.chain.embedded import EmbeddedChain
from actors.chain.keys import ChainKeys
from actors.chain.program_idl import PROGRAM_ID, PROGRAM_SO
from actors.infra.ray_env import prefer_exchange_workers
from actors.infra.services import Services, ensure_services, stop_embedded
from actors.infra.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent

prefer_exchange_workers()  # for every local Ray the tests start


@pytest.fixture(scope="session")
def server_dir() -> Iterator[Callable[[str], Path]]:
    """Make data directories for embedded servers (removed at the end of the session).

    Not under pytest's own temporary root: as root, the embedded PostgreSQL runs as
    another user that needs access to its data directory, and every other pytest session
    on the machine makes that root private again (mode 0700) when it starts, which took
    the database away from a session still running.
    """
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(Path(tempfile.mkdtemp(prefix=f"clob-{name}-")))
        return made[-1]

    try:
        yield make
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def services_settings(server_dir: Callable[[str], Path]) -> Settings:
    """Settings for the session's services: configured URLs, else a temporary data dir."""
    return Settings(data_dir=server_dir("test"))


@pytest.fixture(scope="session")
def services(services_settings: Settings) -> Iterator[Services]:
    """Start (or use the configured) PostgreSQL and Redis for the whole session."""
    running = ensure_services(services_settings)
    try:
        yield running
    finally:
        if running.started:
            stop_embedded(services_settings, running.started)


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
async def pg_dsn(services: Services) -> AsyncIterator[str]:
    """The URL of a database created for this session (dropped afterwards)."""
    name = f"clob_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(services.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(services.database_url, name)
    admin = await asyncpg.connect(services.database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    """The URL of the session's Redis."""
    return services.redis_url


@pytest.fixture(scope="session")
def lobster_dir() -> Path:
    """The shared LOBSTER sample data (`../shared/data/lobster` beside the repo)."""
    return Path(os.environ.get("CLOB_SHARED_DIR", REPO_ROOT.parent / "shared")) / "data" / "lobster"


CHAIN_TEST_SLOT_MS = 25
"""Slot time of the tests' embedded chain: 32 slots (finality) in under a second."""


@pytest.fixture(scope="session")
def solana_rpc_url(server_dir: Callable[[str], Path]) -> Iterator[str]:
    """The JSON-RPC URL of an embedded chain started for the session (stopped after it).

    Always the embedded chain, never `SOLANA_RPC_URL`: the tests use its fault switches.
    """
    # The exchange program, when built (`make test` builds it first; tests that need it
    # and find it missing say so, see `tests/support/program_kit.program_elf`).
    programs = [f"{PROGRAM_ID}={PROGRAM_SO}"] if PROGRAM_SO.is_file() else []
    chain = EmbeddedChain(server_dir("solana"), slot_ms=CHAIN_TEST_SLOT_MS, programs=programs)
    url = chain.start()
    try:
        yield url
    finally:
        chain.stop()


@pytest.fixture(scope="session")
def chain_keys() -> ChainKeys:
    """The exchange's keys on the session's chain: its program has one exchange config, so
    one admin and operator for every test that sets the exchange up there."""
    return ChainKeys(Keypair(), Keypair(), Keypair(), Keypair())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules marked `litesvm` (the Solana VM in the test process) last.

    LiteSVM's JIT corrupts its host process's heap on Linux x86-64 now and then (LiteSVM
    issue 352: the `std::bad_alloc` / SIGABRT lands later, wherever the heap is next
    touched): here, in Ray's core worker creating the next module's actors, which killed
    the whole run. Last, nothing of ours runs after them in that process. The product
    runs LiteSVM only in the embedded chain's own process.
    """
    items.sort(key=lambda item: item.get_closest_marker("litesvm") is not None)
