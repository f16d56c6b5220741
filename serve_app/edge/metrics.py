"""Prometheus metrics of a gateway replica, served at `/metrics`.

Two kinds of figures, one registry per replica:

- The replica's own requests, counted by the edge as they are answered: requests and
  latency by route, orders by result, and the process's CPU and memory. A scrape of one
  replica shows that replica's requests only; every series carries a `replica` label, so
  the replicas' series stay apart when scrapes reach them in turn through the load
  balancer.
- The trading core's figures, asked of every market actor (`status()`) when `/metrics` is
  scraped: journal seq, ledger and projection lag, pass sizes, stage times. They are kept
  for `CLUSTER_CACHE_S` (frequent scrapes, or several replicas scraped, cost the actors
  one call per market per period) and each call is bounded by `STATUS_TIMEOUT_S`; a
  market that does not answer in time shows `clob_market_up 0`. Every replica reports the
  same cluster figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]

log = logging.getLogger(__name__)

CLUSTER_CACHE_S = 5.0
STATUS_TIMEOUT_S = 2.0
ORDER_ROUTE = ("POST", "/api/v1/orders")
_RESULT_OF_STATUS = {201: "placed", 200: "duplicate"}
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# Seconds: a fast order is a few ms, a read that waits for a restarting market up to 5 s.
LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class GatewayMetrics:
    """The registry of one replica: its request metrics and the cluster's figures."""

    def __init__(self, replica: str) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        labels = ("replica", "method", "route", "status")
        self._requests = Counter(
            "clob_http_requests", "HTTP requests answered.", labels, registry=self.registry
        )
        self._latency = Histogram(
            "clob_http_request_duration_seconds",
            "Time from the request's arrival at the gateway to the end of its answer.",
            ("replica", "method", "route"),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._orders = Counter(
            "clob_orders",
            "POST /api/v1/orders answered, by result: placed (201), duplicate (200, a retry "
            "of a client_order_id), the error code, or http_<status> for an error without one.",
            ("replica", "result"),
            registry=self.registry,
        )
        self._replica = replica
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._results: dict[str, Any] = {}
        self.cluster = ClusterFigures()
        self.registry.register(self.cluster)

    def observe(
        self, method: str, route: str, status: int, seconds: float, code: str | None
    ) -> None:
        """Count one answered request."""
        if method not in _METHODS:  # a client picks the method: keep the label set bounded
            method = "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # `labels()` costs a few µs: keep each series' child
            children = (
                self._requests.labels(self._replica, method, route, str(status)),
                self._latency.labels(self._replica, method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if (method, route) == ORDER_ROUTE:
            result = code or _RESULT_OF_STATUS.get(status) or f"http_{status}"
            child = self._results.get(result)
            if child is None:
                child = self._results[result] = self._orders.labels(self._replica, result)
            child.inc()

    async def render(self, core: Any) -> bytes:
        """Refresh the cluster figures if stale; return the text exposition."""
        await self.cluster.refresh(core)
        return generate_latest(self.registry)


class ClusterFigures(Collector):
    """The market actors' figures, refreshed at most every `CLUSTER_CACHE_S`."""

    def __init__(self) -> None:
        self._statuses: dict[str, dict[str, Any] | None] = {}
        self._refreshed_at = -CLUSTER_CACHE_S
        self._ok = False
        self._lock = asyncio.Lock()

    async def refresh(self, core: Any) -> None:
        """Ask every market actor for its `status()` unless the last answers are fresh."""
        async with self._lock:
            if time.monotonic() - self._refreshed_at < CLUSTER_CACHE_S:
                return
            try:
                markets = [r.spec.symbol for r in await core.registry.all(await core.pool())]
            except Exception as exc:  # PostgreSQL unreachable: report it, keep serving
                log.warning("metrics: the market list is unavailable: %r", exc)
                self._ok, self._statuses = False, {}
            else:
                answers = await asyncio.gather(*(_status(core, m) for m in markets))
                self._ok, self._statuses = True, dict(zip(markets, answers, strict=True))
            self._refreshed_at = time.monotonic()

    def collect(self) -> Iterable[Metric]:
        """Yield the families of the last figures (called by the registry)."""
        ok = GaugeMetricFamily(
            "clob_cluster_figures_ok", "1 when the market list could be read at the last refresh."
        )
        ok.add_metric([], 1.0 if self._ok else 0.0)
        yield ok
        yield from market_families(self._statuses)


async def _status(core: Any, symbol: str) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = await asyncio.wait_for(
            core.call(f"market:{symbol}", "status"), STATUS_TIMEOUT_S
        )
    except Exception:  # down, restarting or slow: shown as clob_market_up 0
        return None
    return status


_GAUGES = (
    ("clob_market_journal_seq", "Last journal seq of the market.", "seq"),
    ("clob_market_live_orders", "Orders resting or pending (stops) in the book.", "orders"),
    ("clob_market_halted", "1 when the market is halted.", "halted"),
)


def market_families(statuses: dict[str, dict[str, Any] | None]) -> Iterator[Metric]:
    """Yield the metric families of the markets' `status()` answers (None: no answer)."""
    up = GaugeMetricFamily(
        "clob_market_up", "1 when the market actor answered and is up (recovered).",
        labels=["market"],
    )  # fmt: skip
    gauges = [GaugeMetricFamily(n, h, labels=["market"]) for n, h, _ in _GAUGES]
    ledger = GaugeMetricFamily(
        "clob_market_ledger_lag_entries",
        "Journal entries whose ledger apply has not completed.",
        labels=["market"],
    )
    projection = GaugeMetricFamily(
        "clob_market_projection_lag_entries",
        "Journal entries not yet written to the orders/trades tables.",
        labels=["market"],
    )
    stages = CounterMetricFamily(
        "clob_market_stage_seconds",
        "Wall time spent in each pipeline stage since the actor started.",
        labels=["market", "stage"],
    )
    passes = HistogramMetricFamily(
        "clob_market_pass_commands",
        "Commands per market pass (one reserve, match and journal transaction).",
        labels=["market"],
    )
    for market, status in sorted(statuses.items()):
        answered = status is not None and status.get("status") == "up"
        up.add_metric([market], 1.0 if answered else 0.0)
        if status is None or not answered:  # no answer, or a failed recovery: no figures
            continue
        for family, (_, _, field) in zip(gauges, _GAUGES, strict=True):
            family.add_metric([market], float(status[field]))
        ledger.add_metric([market], float(status["ledger_lag"]))
        projection.add_metric([market], float(status["projection_lag"]))
        for stage, seconds in status["stage_seconds"].items():
            stages.add_metric([market, stage], float(seconds))
        sizes = status["pass_commands"]
        passes.add_metric([market], _cumulative(sizes["le"], sizes["counts"]), sizes["sum"])
    yield from (up, *gauges, ledger, projection, stages, passes)


def _cumulative(bounds: list[int], counts: list[int]) -> list[tuple[str, float]]:
    """Turn per-bucket counts (the last one past every bound) into Prometheus buckets."""
    out: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        total += count
        out.append((bound, float(total)))
    return out
