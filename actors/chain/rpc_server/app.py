"""The HTTP side of the embedded chain: JSON-RPC 2.0 over POST, a slot timer.

A Starlette app (already a dependency through FastAPI) served by uvicorn. Every request
runs on the event loop's one thread, so the chain needs no locks: a transaction executes
between two ticks, never during one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from actors.chain.rpc_server.chain import Chain
from actors.chain.rpc_server.errors import PreflightFailure, RpcFault
from actors.chain.rpc_server.methods import METHODS

log = logging.getLogger(__name__)


def build_app(chain: Chain, slot_ms: int) -> Starlette:
    """Return the JSON-RPC app over `chain`, advancing a slot every `slot_ms` ms."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        ticker = asyncio.create_task(_tick_forever(chain, slot_ms / 1000))
        ticker.add_done_callback(_stop_if_failed)
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            chain.store.close()

    async def rpc(request: Request) -> Response:
        body = await request.body()
        return Response(json.dumps(answer(chain, body)), media_type="application/json")

    async def health(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [Route("/", rpc, methods=["POST"]), Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


async def _tick_forever(chain: Chain, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time()
    while True:
        deadline += interval_s
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        if loop.time() - deadline > 10 * interval_s:
            deadline = loop.time()  # a stalled loop does not replay the slots it missed
        if not chain.switches.slots_paused:
            chain.tick()


def _stop_if_failed(ticker: asyncio.Task[None]) -> None:
    """Stop the server when its slot timer died: a chain whose slots stand still while it
    keeps answering would let every blockhash and confirmation hang silently."""
    if ticker.cancelled() or ticker.exception() is None:
        return
    log.critical("the slot timer failed; stopping", exc_info=ticker.exception())
    signal.raise_signal(signal.SIGTERM)  # uvicorn shuts down cleanly on it


def answer(chain: Chain, body: bytes) -> Any:
    """Answer one JSON-RPC request or a batch of them."""
    try:
        request = json.loads(body)
    except ValueError:
        return _error(None, -32700, "Parse error")
    if isinstance(request, list):
        if not request:
            return _error(None, -32600, "Invalid request")
        return [dispatch(chain, item) for item in request]
    return dispatch(chain, request)


def dispatch(chain: Chain, request: Any) -> dict[str, Any]:
    """Answer one request object."""
    if not isinstance(request, dict) or not isinstance(request.get("method"), str):
        return _error(None, -32600, "Invalid request")
    rid, method = request.get("id"), request["method"]
    params = request.get("params", [])
    if not isinstance(params, list):
        return _error(rid, -32602, "Invalid params: params must be an array")
    injected = _injected_fault(chain, method)
    if injected is not None:
        return _error(rid, injected.code, injected.message, injected.data)
    handler = METHODS.get(method)
    if handler is None:
        return _error(rid, -32601, "Method not found")
    try:
        return {"jsonrpc": "2.0", "result": handler(chain, params), "id": rid}
    except PreflightFailure as exc:
        return _error(rid, exc.code, exc.message, json.loads(exc.result.to_json()))
    except RpcFault as exc:
        return _error(rid, exc.code, exc.message, exc.data)
    except Exception:
        log.exception("%s failed", method)
        return _error(rid, -32603, "Internal error")


def _injected_fault(chain: Chain, method: str) -> RpcFault | None:
    s = chain.switches
    if method.startswith("clob_") or s.fail_next <= 0:
        return None
    if s.fail_method is not None and s.fail_method != method:
        return None
    s.fail_next -= 1
    # A validator's "node is unhealthy" carries this data; clients' parsers expect it.
    data = {"numSlotsBehind": None} if s.fail_code == -32005 else None
    return RpcFault(s.fail_code, s.fail_message, data)


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": rid}
