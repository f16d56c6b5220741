"""One client's session: its identity, its subscriptions and its operations.

The service (`serve_app.ws.service`) reads frames and hands each to `on_frame`; refused
operations answer `error` and leave the connection open. Trading ops run as tasks (their
answers carry the client's `id`), so a slow market does not hold up pings or
subscriptions. With cancel-on-disconnect on, closing the socket or missing a heartbeat
cancels every open order of the account, in every market.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, NamedTuple

from pydantic import ValidationError

from serve_app.auth import Principal, require_scope
from serve_app.errors import ApiError
from serve_app.gateway import orders
from serve_app.gateway.core import GatewayCore
from serve_app.ws import protocol
from serve_app.ws.connection import CLOSE_HEARTBEAT, CLOSE_POLICY, Connection, transition
from serve_app.ws.hub import STREAM_UNAVAILABLE, Hub
from serve_app.ws.market_feed import GroupKey
from serve_app.ws.protocol import (
    PRIVATE_CHANNELS,
    Amend,
    Auth,
    Cancel,
    CancelAll,
    CancelOnDisconnect,
    Ping,
    Place,
    ProtocolError,
    Subscribe,
    encode,
)

log = logging.getLogger(__name__)
CANCEL_ON_DISCONNECT_TIMEOUT_S = 10.0
WATCHDOG_TICK_S = 0.25


class Sub(NamedTuple):
    """One subscription: its channel, market (None: every market of a private channel),
    the book's group (orderbook only) and its format."""

    channel: str
    market: str | None
    group: GroupKey | None
    format: str


class Session:
    """See the module docstring."""

    def __init__(self, core: GatewayCore, hub: Hub, conn: Connection) -> None:
        self.core = core
        self.hub = hub
        self.conn = conn
        self.principal: Principal | None = None
        self.subs: dict[tuple[str, str | None], Sub] = {}
        self.cancel_on_disconnect = False
        self.heartbeat_s = conn.limits.heartbeat_s
        self.last_seen = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        conn.on_overflow = self._drop_books

    # -- frames ------------------------------------------------------------------------------

    async def on_frame(self, frame: str | bytes) -> None:
        """Handle one client frame (rate limit, size, parse, dispatch)."""
        self.last_seen = time.monotonic()
        if not self.conn.inbox.take():
            if not self.conn.flood.take():
                self.conn.close(CLOSE_POLICY, "message flood", drain=True)
                return
            self.conn.send(protocol.error("rate_limited", "too many messages; slow down"))
            return
        if len(frame) > self.conn.limits.max_frame_bytes:
            limit = self.conn.limits.max_frame_bytes
            self.conn.send(protocol.error("frame_too_large", f"a frame is at most {limit} bytes"))
            return
        try:
            op = protocol.parse(frame)
            await self._dispatch(op)
        except ProtocolError as exc:
            self.conn.send(protocol.error(exc.code, exc.message, exc.id, exc.details))

    async def _dispatch(self, op: Any) -> None:
        if isinstance(op, Ping):
            self.conn.send(encode({"op": "pong", "id": op.id}))
        elif isinstance(op, Subscribe):
            await (self._subscribe(op) if op.op == "subscribe" else self._unsubscribe(op))
        elif isinstance(op, Auth):
            await self._auth(op.api_key, op.id)
            if op.cancel_on_disconnect:
                self._set_cancel_on_disconnect(True, op.heartbeat_s, op.id)
        elif isinstance(op, CancelOnDisconnect):
            self._set_cancel_on_disconnect(op.enabled, op.heartbeat_s, op.id)
        else:
            task = asyncio.get_running_loop().create_task(self._trade(op))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- auth --------------------------------------------------------------------------------

    async def authenticate(self, api_key: str) -> None:
        """Authenticate the handshake's `X-API-Key` (a failure is reported, not fatal)."""
        try:
            await self._auth(api_key, None)
        except ProtocolError as exc:
            self.conn.send(protocol.error(exc.code, exc.message, None))

    async def _auth(self, api_key: str, op_id: Any) -> None:
        try:
            principal = await self.core.auth.authenticate(await self.core.pool(), api_key)
        except ApiError as exc:
            raise ProtocolError(exc.code, exc.message, op_id) from None
        if self.principal is not None and principal.account_id != self.principal.account_id:
            for key, sub in list(self.subs.items()):  # another account: its streams end
                if sub.channel in PRIVATE_CHANNELS:
                    self._leave(sub)
                    del self.subs[key]
        self.principal = principal
        self.conn.state = transition(self.conn.state, "auth")
        self.conn.send(encode({"op": "authenticated", "id": op_id,
                               "account_id": principal.account_id,
                               "scopes": list(principal.scopes)}))  # fmt: skip

    def _set_cancel_on_disconnect(
        self, enabled: bool, heartbeat_s: float | None, op_id: Any
    ) -> None:
        if self.principal is None:
            raise ProtocolError("unauthorized", "authenticate first (op auth)", op_id)
        try:
            require_scope(self.principal, "trade")
        except ApiError as exc:
            raise ProtocolError(exc.code, exc.message, op_id) from None
        self.cancel_on_disconnect = enabled
        self.heartbeat_s = heartbeat_s or self.conn.limits.heartbeat_s
        if enabled and self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        self.conn.send(encode({"op": "cancel_on_disconnect", "id": op_id, "enabled": enabled,
                               "heartbeat_s": self.heartbeat_s}))  # fmt: skip

    async def _watch(self) -> None:
        while self.conn.open:
            await asyncio.sleep(WATCHDOG_TICK_S)
            if self.cancel_on_disconnect and time.monotonic() - self.last_seen > self.heartbeat_s:
                self.conn.close(CLOSE_HEARTBEAT, "heartbeat missed", drain=True)
                return

    # -- subscriptions -----------------------------------------------------------------------

    async def _subscribe(self, op: Subscribe) -> None:
        sub = await self._check(op)
        key = (sub.channel, sub.market)
        if key not in self.subs and len(self.subs) >= self.conn.limits.max_subscriptions:
            limit = self.conn.limits.max_subscriptions
            raise ProtocolError("too_many_subscriptions", f"at most {limit} at once", op.id)
        old = self.subs.pop(key, None)
        if old is not None:  # the same stream with other options: replace it
            self._leave(old)
        self.subs[key] = sub
        ack: dict[str, Any] = {"op": "subscribed", "id": op.id, "channel": sub.channel,
                               "market": sub.market, "format": sub.format}  # fmt: skip
        if sub.group is not None:
            ack.update(depth=op.depth, interval_ms=op.interval_ms,
                       snapshot_every_ms=op.snapshot_every_ms)  # fmt: skip
        self.conn.send(encode(ack))
        await self._join(sub)
        if self.hub.failing:  # Redis is away: the data starts when it is back
            self.conn.send(STREAM_UNAVAILABLE)

    async def _check(self, op: Subscribe) -> Sub:
        if op.channel in PRIVATE_CHANNELS:
            if self.principal is None:
                raise ProtocolError("unauthorized", "private channels need auth first", op.id)
            if op.account_id is not None and op.account_id != self.principal.account_id:
                raise ProtocolError("forbidden", "only your own account's streams", op.id)
            try:
                require_scope(self.principal, "read")
            except ApiError as exc:
                raise ProtocolError(exc.code, exc.message, op.id) from None
        elif op.market is None:
            raise ProtocolError("invalid_request", f"{op.channel} needs a market", op.id)
        market = None if op.market is None else await self._symbol(op.market, op.id)
        group = None
        if op.channel == "orderbook":
            group = GroupKey(op.depth, op.interval_ms, op.snapshot_every_ms, op.format)
        return Sub(op.channel, market, group, op.format)

    async def _symbol(self, market: str, op_id: Any) -> str:
        try:
            record = await self.core.registry.market(await self.core.pool(), market)
        except ApiError as exc:
            raise ProtocolError(exc.code, exc.message, op_id) from None
        return record.spec.symbol

    async def _join(self, sub: Sub) -> None:
        if sub.channel in PRIVATE_CHANNELS:
            assert self.principal is not None
            account = await self.hub.account(self.principal.account_id)
            account.join(self.conn, (sub.channel, sub.market, sub.format))
            return
        assert sub.market is not None
        feed = await self.hub.market(sub.market)
        if sub.group is not None:
            feed.join_book(self.conn, sub.group)
        elif sub.channel == "trades":
            feed.join_trades(self.conn, sub.format)
        else:
            feed.join_ticker(self.conn)

    def _leave(self, sub: Sub) -> None:
        if sub.channel in PRIVATE_CHANNELS:
            if self.principal is not None:
                account = self.hub.accounts.get(self.principal.account_id)
                if account is not None:
                    account.leave(self.conn, (sub.channel, sub.market, sub.format))
                self.hub.release_account(self.principal.account_id)
            return
        assert sub.market is not None
        feed = self.hub.markets.get(sub.market)
        if feed is not None:
            if sub.group is not None:
                feed.leave_book(self.conn, sub.group)
            elif sub.channel == "trades":
                feed.leave_trades(self.conn)
            else:
                feed.leave_ticker(self.conn)
            self.hub.release_market(sub.market)

    async def _unsubscribe(self, op: Subscribe) -> None:
        market = None if op.market is None else await self._symbol(op.market, op.id)
        sub = self.subs.pop((op.channel, market), None)
        if sub is None:
            raise ProtocolError("not_subscribed", "no such subscription", op.id)
        self._leave(sub)
        self.conn.send(encode({"op": "unsubscribed", "id": op.id, "channel": op.channel,
                               "market": market}))  # fmt: skip

    def _drop_books(self) -> list[bytes]:
        """Drop the book subscriptions of a connection whose queue overflowed."""
        notices = []
        for key, sub in list(self.subs.items()):
            if sub.group is not None:
                self._leave(sub)
                del self.subs[key]
                notice = {"op": "resync", "channel": "orderbook", "market": sub.market,
                          "reason": "slow_consumer"}  # fmt: skip
                notices.append(encode(notice))
        return notices

    # -- trading -----------------------------------------------------------------------------

    async def _trade(self, op: Place | Amend | Cancel | CancelAll) -> None:
        try:
            if self.principal is None:
                raise ApiError(401, "unauthorized", "trading needs auth first (op auth)")
            status, result = await self._run_trade(op, self.principal)
        except ApiError as exc:
            details = exc.details or None
            self.conn.send(protocol.error(exc.code, exc.message, op.id, details))
            return
        except ValidationError as exc:
            details = {"errors": protocol.field_errors(exc)}
            message = "the request has invalid fields"
            self.conn.send(protocol.error("invalid_request", message, op.id, details))
            return
        except Exception as exc:  # a bug or an unreachable market: never kill the session
            log.exception("ws %s failed", op.op)
            self.conn.send(protocol.error("unavailable", f"{type(exc).__name__}", op.id))
            return
        self.conn.send(encode({"op": "result", "id": op.id, "request": op.op,
                               "status": status, "result": result}))  # fmt: skip

    async def _run_trade(
        self, op: Place | Amend | Cancel | CancelAll, caller: Principal
    ) -> tuple[int, Any]:
        core = self.core
        if isinstance(op, Place):
            status, view = await orders.place(core, caller, op.order)
            return status, view.model_dump(mode="json", by_alias=True)
        if isinstance(op, Amend):
            body = op.body()
            return 200, (await orders.amend(core, caller, op.order_id, body)).model_dump(
                mode="json"
            )
        if isinstance(op, Cancel):
            return 200, (await orders.cancel(core, caller, op.order_id)).model_dump(mode="json")
        return 200, (await orders.cancel_all(core, caller, op.market)).model_dump(mode="json")

    # -- the end -----------------------------------------------------------------------------

    async def end(self) -> None:
        """Leave every subscription; with cancel-on-disconnect, cancel the account's orders."""
        for sub in self.subs.values():
            self._leave(sub)
        self.subs.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
        if self.cancel_on_disconnect and self.principal is not None:
            try:
                await asyncio.wait_for(
                    orders.cancel_all(self.core, self.principal), CANCEL_ON_DISCONNECT_TIMEOUT_S
                )
            except Exception:
                log.exception("cancel-on-disconnect of account %d failed",
                              self.principal.account_id)  # fmt: skip
