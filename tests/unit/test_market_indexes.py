"""The market actor's idempotency indexes: a seen request id or client order id is a retry
only with the first request's terms (digest); with other terms it is refused."""

from __future__ import annotations

from actors.contracts import OrderResult
from actors.market.state import Indexes, differs

ACCOUNT = 7


def _placed(request_id: str, order_id: str, seq: int = 1) -> OrderResult:
    return OrderResult(request_id, ok=True, order_id=order_id, seq=seq, ts_ms=1_000)


def test_a_retry_with_the_same_terms_gets_the_first_answer() -> None:
    indexes = Indexes(window=10)
    indexes.remember(ACCOUNT, "c-1", _placed("c-1", "o-1"), "d1")
    again = indexes.duplicate(ACCOUNT, "c-1", "c-1", "d1")
    assert again is not None
    assert (again.ok, again.duplicate, again.order_id, again.seq) == (True, True, "o-1", 1)


def test_a_request_id_reused_with_other_terms_is_refused() -> None:
    indexes = Indexes(window=10)
    indexes.remember(ACCOUNT, "c-1", _placed("c-1", "o-1"), "d1")
    refused = indexes.duplicate(ACCOUNT, "c-1", "c-1", "d2")
    assert refused is not None
    assert (refused.ok, refused.code, refused.order_id) == (
        False, "duplicate_client_order_id", "o-1"
    )  # fmt: skip
    assert not refused.duplicate


def test_a_client_order_id_whose_answer_left_the_window_is_still_checked() -> None:
    indexes = Indexes(window=1)
    indexes.remember(ACCOUNT, "c-1", _placed("c-1", "o-1"), "d1")
    indexes.remember(ACCOUNT, None, _placed("r-2", "o-2", seq=2))  # evicts c-1's answer
    same = indexes.duplicate(ACCOUNT, "c-1", "c-1", "d1")
    assert same is not None and (same.ok, same.duplicate, same.order_id) == (True, True, "o-1")
    other = indexes.duplicate(ACCOUNT, "c-1", "c-1", "d9")
    assert other is not None and (other.ok, other.code) == (False, "duplicate_client_order_id")


def test_recovered_client_order_ids_compare_by_their_stored_digest() -> None:
    indexes = Indexes(window=10)
    indexes.client_orders[(ACCOUNT, "c-1")] = ("o-1", None, "d1")
    indexes.client_orders[(ACCOUNT, "c-old")] = ("o-0", None, None)  # no digest kept
    refused = indexes.duplicate(ACCOUNT, "c-1", "c-1", "d2")
    assert refused is not None and refused.code == "duplicate_client_order_id"
    legacy = indexes.duplicate(ACCOUNT, "c-old", "c-old", "d2")
    assert legacy is not None and (legacy.ok, legacy.order_id) == (True, "o-0")


def test_another_account_may_use_the_same_client_order_id() -> None:
    indexes = Indexes(window=10)
    indexes.remember(ACCOUNT, "c-1", _placed("c-1", "o-1"), "d1")
    assert indexes.duplicate(ACCOUNT + 1, "c-1", "c-1", "d2") is None


def test_a_rejected_order_keeps_no_client_order_id() -> None:
    indexes = Indexes(window=10)
    rejected = OrderResult("c-1", ok=False, code="invalid_price", order_id="o-1", seq=1)
    indexes.remember(ACCOUNT, "c-1", rejected, "d1")
    assert (ACCOUNT, "c-1") not in indexes.client_orders
    retry = indexes.duplicate(ACCOUNT, "c-1", "c-1", "d1")
    assert retry is not None and (retry.ok, retry.code, retry.duplicate) == (
        False, "invalid_price", True
    )  # fmt: skip


def test_an_unknown_digest_compares_equal() -> None:
    assert not differs(None, "d1")
    assert not differs("d1", None)
    assert not differs("d1", "d1")
    assert differs("d1", "d2")
