"""Fixtures of the integration tests that need Ray."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import ray


@pytest.fixture(scope="module")
def namespace(request: pytest.FixtureRequest) -> Iterator[str]:
    """Start one local Ray for the requesting module; yield a namespace of its own."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    ns = f"{module}-{uuid.uuid4().hex[:8]}"
    ray.init(num_cpus=4, include_dashboard=False, namespace=ns, log_to_driver=False)
    try:
        yield ns
    finally:
        ray.shutdown()
