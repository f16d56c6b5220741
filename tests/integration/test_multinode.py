"""Markets spread over a three-node Ray cluster on this machine; removing the node that
hosts a market moves it to another node with nothing lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from actors.bootstrap import start_core
from tests.support.market_kit import (
    credit,
    eventually,
    limit,
    new_accounts,
)

SHARDS = 2
MARKETS = 4

pytestmark = pytest.mark.timeout(200)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Cluster, str]]:
    """A head and two worker nodes (one CPU each), connected as the driver."""
    if ray.is_initialized():
        ray.shutdown()
    ns = f"multi-{uuid.uuid4().hex[:8]}"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    ray.init(address=c.address, namespace=ns, log_to_driver=False)
    # Registered is not yet schedulable: until the GCS's view of resources has every node,
    # an actor's soft affinity to a new node falls back to another (seen on a loaded CI).
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        yield c, ns
    finally:
        ray.shutdown()
        del workers
        c.shutdown()


async def test_market_on_a_removed_node_recovers_elsewhere(
    cluster: tuple[Cluster, str], db_url: str
) -> None:
    c, namespace = cluster
    controller = await asyncio.to_thread(start_core, db_url, SHARDS, namespace)
    symbols = [f"M{i}{uuid.uuid4().hex[:4].upper()}-USD" for i in range(MARKETS)]
    for s in symbols:
        await controller.create_market.remote(
            {"symbol": s, "base_asset": s.split("-")[0], "quote_asset": "USD"}
        )
    nodes = await controller.market_nodes.remote()
    alive = [(n["NodeID"][:8], n["Alive"], n["Resources"].get("CPU")) for n in ray.nodes()]
    assert len(set(nodes.values())) >= 2, (nodes, alive)  # Spread over nodes.
    head_id = c.head_node.node_id
    victim_symbol = next((s for s in symbols if nodes[s] != head_id), None)
    assert victim_symbol is not None, "every market on the head node"
    victim = next(n for n in c.worker_nodes if n.node_id == nodes[victim_symbol])
    [account] = await new_accounts(db_url, 1)
    await credit(namespace, SHARDS, account, victim_symbol.split("-")[0], 1_000)
    market = ray.get_actor(f"market:{victim_symbol}", namespace=namespace)
    orders = [limit(account, f"n{i}", "sell", 50 + i, 1 + i % 3) for i in range(30)]
    await market.submit.remote(orders)
    before = await market.l3.remote()
    seq = (await market.status.remote())["seq"]
    c.remove_node(victim)

    def handle() -> Any:
        return ray.get_actor(f"market:{victim_symbol}", namespace=namespace)

    status = await eventually(lambda: handle().status.remote(), timeout_s=120)  # noqa: PLW0108
    assert status["node_id"] != victim.node_id and status["seq"] == seq
    assert await handle().l3.remote() == before
    [after] = await eventually(
        lambda: handle().submit.remote([limit(account, "late", "sell", 99, 1)]), timeout_s=60
    )
    assert after.ok and after.seq == seq + 1
