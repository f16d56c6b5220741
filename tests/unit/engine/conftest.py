"""Fixtures of the engine's rule tests."""

from __future__ import annotations

import pytest
from engine_harness import Harness


@pytest.fixture
def h() -> Harness:
    """A fresh harness on the default ``{"symbol": "X"}`` market."""
    return Harness()
