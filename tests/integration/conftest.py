"""Fixtures of the integration tests: a database and a Ray namespace of each module's own
(in one local Ray for the package), and a client of the session's embedded chain."""

from __future__ import annotations

import contextlib
import time
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


RAY_NAMESPACE = "clob-integration"
"""The driver's own namespace; every module's actors are named in a namespace of its own."""
NAMESPACE_GONE_TIMEOUT_S = 30.0


@pytest.fixture(scope="package", autouse=True)
def _local_ray() -> Iterator[None]:
    """Shut down the package's local Ray when the integration tests are done, so that no
    other package (the e2e exchange starts a Ray of its own) meets it."""
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield a Ray namespace of the requesting module's own; kill its actors after it.

    One local Ray serves every module (started by the first that needs it, again after a
    module that shut it down): a start and a shutdown cost 3-6 s of the 2-core machine
    each, per module. The modules stay apart as they did with a Ray each: every actor of
    the exchange is named and detached in the namespace it is given, and after the module
    every named actor of its namespace is killed (no restart) and gone before the next
    module starts.
    """
    ns = f"{_module(request)}-{uuid.uuid4().hex[:8]}"
    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=4, include_dashboard=False, namespace=RAY_NAMESPACE,
            log_to_driver=False,
        )  # fmt: skip
    try:
        yield ns
    finally:
        if ray.is_initialized():
            _kill_namespace(ns)


def _named_in(namespace: str) -> list[str]:
    listed = ray.util.list_named_actors(all_namespaces=True)
    return [a["name"] for a in listed if a["namespace"] == namespace]


def _kill_namespace(namespace: str) -> None:
    """Kill every named actor of `namespace` and wait until their names are free."""
    for name in _named_in(namespace):
        with contextlib.suppress(ValueError):  # gone meanwhile
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    deadline = time.monotonic() + NAMESPACE_GONE_TIMEOUT_S
    while (left := _named_in(namespace)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"actors of {namespace} outlived the module: {left}"


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
