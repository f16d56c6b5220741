"""The WebSocket replica's garbage-collection policy (`serve_app/ws/gcpolicy.py`): freeze
after each full collection, thaw after enough sockets closed."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

from serve_app.ws.gcpolicy import MIN_CHURN, GcPolicy


class FakeGc:
    """Records freezes and thaws; collections are reported by calling the callbacks."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[str, dict[str, Any]], None]] = []
        self.calls: list[str] = []

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def collect(self, generation: int) -> None:
        for callback in list(self.callbacks):
            callback("start", {"generation": generation})
            callback("stop", {"generation": generation, "collected": 0})


async def _policy(open_sockets: int = 10_000) -> tuple[GcPolicy, FakeGc]:
    fake = FakeGc()
    policy = GcPolicy(lambda: open_sockets, module=fake)
    policy.install(asyncio.get_running_loop())
    policy.install(asyncio.get_running_loop())  # the service calls it on every socket
    return policy, fake


async def test_a_full_collection_is_followed_by_a_freeze_on_the_loop() -> None:
    policy, fake = await _policy()
    fake.collect(0)
    fake.collect(1)
    await asyncio.sleep(0)
    assert fake.calls == [] and policy.full_collections == 0, "young collections change nothing"
    fake.collect(2)
    assert fake.calls == [], "the freeze runs on the loop, not inside the collector"
    await asyncio.sleep(0)
    assert fake.calls == ["freeze"] and policy.frozen
    assert policy.full_collections == 1 and policy.full_seconds >= 0


async def test_enough_closed_sockets_thaw_once_until_the_next_freeze() -> None:
    policy, fake = await _policy(open_sockets=10_000)  # a quarter: 2,500 > MIN_CHURN
    for _ in range(2_499):
        policy.closed()
    assert fake.calls == [], "closes before any freeze thaw nothing"
    fake.collect(2)
    await asyncio.sleep(0)
    for _ in range(2_499):
        policy.closed()
    assert fake.calls == ["freeze"]
    policy.closed()
    assert fake.calls == ["freeze", "unfreeze"] and not policy.frozen and policy.thaws == 1
    for _ in range(5_000):
        policy.closed()
    assert fake.calls == ["freeze", "unfreeze"], "thawed already: the next full collection frees"
    fake.collect(2)
    await asyncio.sleep(0)
    assert fake.calls[-1] == "freeze" and policy.closed_since_freeze == 0


async def test_few_sockets_thaw_after_min_churn() -> None:
    policy, fake = await _policy(open_sockets=40)
    fake.collect(2)
    await asyncio.sleep(0)
    for _ in range(MIN_CHURN - 1):
        policy.closed()
    assert "unfreeze" not in fake.calls
    policy.closed()
    assert fake.calls[-1] == "unfreeze"


async def test_without_freezing_it_only_counts() -> None:
    fake = FakeGc()
    policy = GcPolicy(lambda: 10, freeze=False, module=fake)
    policy.install(asyncio.get_running_loop())
    fake.collect(2)
    await asyncio.sleep(0)
    for _ in range(MIN_CHURN):
        policy.closed()
    assert fake.calls == [] and policy.full_collections == 1 and not policy.frozen


async def test_with_the_real_collector_a_full_collection_freezes_what_survived() -> None:
    loop = asyncio.get_running_loop()
    policy = GcPolicy(lambda: 0)
    policy.install(loop)
    try:
        before = gc.get_freeze_count()
        gc.collect()
        await asyncio.sleep(0)
        assert policy.full_collections >= 1 and policy.frozen
        assert gc.get_freeze_count() > before
    finally:
        policy.uninstall()
        gc.unfreeze()
