"""The WebSocket figures of a replica, for its `/metrics` (`serve_app.edge.metrics`'
registry): open sockets, the hub's Redis state, feeds and messages."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from serve_app.ws.service import WsService


class WsCollector(Collector):
    """Read `WsService.status()` at each scrape."""

    def __init__(self, service: WsService, replica: str) -> None:
        self._service = service
        self._replica = replica

    def collect(self) -> Iterator[Metric]:
        """Yield the figures, each with this replica's label."""
        status = self._service.status()
        gauges = (
            ("clob_ws_connections", "Open WebSockets.", status["connections"]),
            ("clob_ws_raw_connections", "Open WebSockets whose frames go straight to the "
             "transport (serve_app/ws/wire.py).", status["raw_connections"]),
            ("clob_ws_redis_up", "Whether the stream's Redis connection is up.",
             int(status["redis_up"])),
            ("clob_ws_market_feeds", "Markets watched by this replica.", status["markets"]),
            ("clob_ws_account_feeds", "Accounts watched by this replica.", status["accounts"]),
        )  # fmt: skip
        for name, text, value in gauges:
            gauge = GaugeMetricFamily(name, text, labels=["replica"])
            gauge.add_metric([self._replica], value)
            yield gauge
        counters = (
            ("clob_ws_stream_messages", "Stream messages read from Redis.", status["messages"]),
            ("clob_ws_redis_reconnects", "Reconnections to Redis.", status["reconnects"]),
            ("clob_ws_gc_full_collections", "Full garbage collections (serve_app/ws/"
             "gcpolicy.py).", status["gc_full_collections"]),
            ("clob_ws_gc_full_seconds", "Seconds spent in full garbage collections, the "
             "event loop stopped.", status["gc_full_seconds"]),
        )  # fmt: skip
        for name, text, value in counters:
            counter = CounterMetricFamily(name, text, labels=["replica"])
            counter.add_metric([self._replica], value)
            yield counter
