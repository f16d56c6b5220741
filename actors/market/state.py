"""In-memory state of a market actor besides the engine: indexes, snapshot encoding.

`Indexes` hold the idempotency index ((account, request_id) -> OrderResult, the last
`window` journaled commands) and the client order id index ((account, client_order_id) ->
(order_id, request_id)). Snapshots wrap the engine dump with the actor's own state
(last command time, live orders' fee numerators) as zlib-compressed JSON.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from actors import jsonx
from actors.accounts import AccountId
from actors.contracts import OrderResult
from actors.engine import Command, Event, Rejected

JsonDict = dict[str, Any]
SNAPSHOT_FORMAT = "json+zlib"
ResultKey = tuple[AccountId | None, str]


def result_of(
    request_id: str, seq: int, command: Command, events: tuple[Event, ...]
) -> OrderResult:
    """Return the answer of a journaled command from its events."""
    code = next((e.reason.value for e in events if type(e) is Rejected), None)
    oid = getattr(command, "id", None)
    ts = getattr(command, "ts", None)
    return OrderResult(
        request_id=request_id,
        ok=code is None,
        code=code,
        order_id=oid if isinstance(oid, str) else None,
        seq=seq,
        events=events,
        ts_ms=ts if isinstance(ts, int) else None,
    )


def differs(digest: str | None, other: str | None) -> bool:
    """Return whether two requests' digests show different terms (None: unknown, same)."""
    return digest is not None and other is not None and digest != other


def reused(request_id: str, order_id: str | None) -> OrderResult:
    """Return the refusal of a request that reuses a client order id with other terms."""
    return OrderResult(
        request_id=request_id, ok=False, code="duplicate_client_order_id", order_id=order_id
    )


class StoredResult:
    """The answer of a command journaled before the snapshot a recovery restored: its
    request id, whether it was accepted and its order id come from the stored form at
    once, the answer itself (events decoded) only if a retry asks for it.

    Args:
        request_id: The request's idempotency key.
        ok: False when the command was rejected.
        order_id: The order the command named, if any.
        make: Builds the full answer.
    """

    __slots__ = ("_answer", "_make", "ok", "order_id", "request_id")

    def __init__(
        self, request_id: str, ok: bool, order_id: str | None, make: Callable[[], OrderResult]
    ) -> None:
        self.request_id = request_id
        self.ok = ok
        self.order_id = order_id
        self._make = make
        self._answer: OrderResult | None = None

    def answer(self) -> OrderResult:
        """Return the full answer (built once)."""
        if self._answer is None:
            self._answer = self._make()
        return self._answer


def _answer(result: OrderResult | StoredResult) -> OrderResult:
    return result.answer() if isinstance(result, StoredResult) else result


class Indexes:
    """Idempotency and client-order-id indexes.

    A request whose request id or client order id was seen is a retry when its digest
    (`OrderRequest.digest`) matches the first one's: it gets the stored answer. With other
    terms it is refused (`reused`), changing nothing.

    Args:
        window: How many journaled commands' results are kept for duplicate detection.
    """

    def __init__(self, window: int) -> None:
        self._window = window
        self._results: OrderedDict[ResultKey, tuple[OrderResult | StoredResult, str | None]] = (
            OrderedDict()
        )
        # (account, client order id) -> (order id, first request id, digest)
        self.client_orders: dict[tuple[AccountId, str], tuple[str, str | None, str | None]] = {}

    def remember(
        self,
        account_id: AccountId | None,
        client_order_id: str | None,
        result: OrderResult | StoredResult,
        digest: str | None = None,
    ) -> None:
        """Store a journaled command's result (and its client order id when accepted)."""
        self._results[(account_id, result.request_id)] = (result, digest)
        if len(self._results) > self._window:
            self._results.popitem(last=False)
        if client_order_id is not None and account_id is not None and result.ok:
            self.client_orders[(account_id, client_order_id)] = (
                result.order_id or "",
                result.request_id,
                digest,
            )

    def duplicate(
        self,
        account_id: AccountId,
        request_id: str,
        client_order_id: str | None,
        digest: str | None = None,
    ) -> OrderResult | None:
        """Return the stored answer if this request (or client order id) was seen with the
        same terms, a `reused` refusal if with other terms, else None."""
        found = self._results.get((account_id, request_id))
        if found is not None:
            result, first_digest = found
            if differs(first_digest, digest):
                return reused(request_id, result.order_id)
            return replace(_answer(result), duplicate=True)
        if client_order_id is None:
            return None
        used = self.client_orders.get((account_id, client_order_id))
        if used is None:
            return None
        order_id, first_request, first_digest = used
        if differs(first_digest, digest):
            return reused(request_id, order_id)
        original = self._results.get((account_id, first_request or ""))
        if original is not None:
            return replace(_answer(original[0]), request_id=request_id, duplicate=True)
        # The first answer left the window (or recovery read the order from the orders
        # table): the order is what the caller reads back.
        return OrderResult(request_id=request_id, ok=True, order_id=order_id, duplicate=True)


def encode_snapshot(engine_dump: JsonDict, last_ts: int, fees: dict[str, int]) -> bytes:
    """Encode an engine dump with the actor's own state: the last command's time and the
    live orders' fee numerators (`FeeCounts`; under their historical key `cum_notional`,
    which every snapshot has)."""
    doc = {"engine": engine_dump, "last_ts": last_ts, "cum_notional": fees}
    return zlib.compress(jsonx.dumpb(doc), 1)


def decode_snapshot(fmt: str, state: bytes) -> tuple[JsonDict, int, dict[str, int]]:
    """Decode `encode_snapshot` bytes: (engine dump, last ts, fee numerators)."""
    if fmt != SNAPSHOT_FORMAT:
        raise ValueError(f"unsupported snapshot format {fmt!r}")
    doc = jsonx.loads(zlib.decompress(state))
    return doc["engine"], int(doc["last_ts"]), {k: int(v) for k, v in doc["cum_notional"].items()}
