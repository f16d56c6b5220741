"""Fixtures of the integration tests: a Ray and a database of each module's own, and a
client of the session's embedded chain."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import ray

from actors.chain.client import ChainClient
from tests.support.chain import rpc
from tests.support.market_kit import create_database, drop_database


def _module(request: pytest.FixtureRequest) -> str:
    """The requesting module's short name (`test_chaos` -> `chaos`)."""
    return str(request.module.__name__).rsplit(".", 1)[-1].removeprefix("test_")


@pytest_asyncio.fixture(scope="module")
async def db_url(request: pytest.FixtureRequest, pg_dsn: str) -> AsyncIterator[str]:
    """A migrated database of the requesting module's own, dropped after it."""
    url = await create_database(pg_dsn, _module(request))
    try:
        yield url
    finally:
        await drop_database(pg_dsn, url)


@pytest.fixture(scope="module")
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """Start one local Ray for the requesting module; yield a namespace of its own."""
    ns = f"{_module(request)}-{uuid.uuid4().hex[:8]}"
    ray.init(
        address="local", num_cpus=4, include_dashboard=False, namespace=ns, log_to_driver=False
    )
    try:
        yield ns
    finally:
        ray.shutdown()


@pytest.fixture
async def client(solana_rpc_url: str) -> AsyncIterator[ChainClient]:
    """A client of the session's embedded chain (`confirmed`, 10 s timeout)."""
    async with ChainClient(solana_rpc_url, "confirmed", timeout_s=10) as chain:
        yield chain


@pytest.fixture
async def paused(solana_rpc_url: str) -> AsyncIterator[None]:
    """Stop the embedded chain's slot timer for one test (slots move only with
    `clob_advanceSlots`), and leave every switch off after it."""
    await rpc(solana_rpc_url, "clob_pauseSlots", True)
    try:
        yield
    finally:
        await rpc(solana_rpc_url, "clob_pauseSlots", False)
        await rpc(solana_rpc_url, "clob_dropTransactions", 0)
        await rpc(solana_rpc_url, "clob_delayConfirmations", 0)
        await rpc(solana_rpc_url, "clob_failRequests", 0)
