"""The gateway's order batcher waits for company only when requests come together
(`serve_app.gateway.core.next_batch_wait`).

`serve.batch` runs only inside a Serve replica, so the wiring (Serve's documented
`set_batch_wait_timeout_s`, called by every batch) runs in the e2e order tests.
"""

from __future__ import annotations

from serve_app.gateway.core import BATCH_WAIT_TIMEOUT_S, next_batch_wait


def test_the_wait_follows_the_last_batch_size() -> None:
    assert BATCH_WAIT_TIMEOUT_S > 0
    assert next_batch_wait(1) == 0.0  # a lone request: the next one goes at once
    assert next_batch_wait(2) == next_batch_wait(64) == BATCH_WAIT_TIMEOUT_S
