"""Prometheus metrics: requests by connection, verb, resource and code; latency; open streams."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from kubegate.proxy.flow import Flow, Stage


class Metrics:
    """One registry per gateway, so several gateways (tests, workers) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kubegate_requests", "Requests handled, by outcome",
                                ["connection", "verb", "resource", "code"], registry=self.registry)
        self.latency = Histogram("kubegate_request_duration_seconds",
                                 "Time to the end of the response (streams excluded)", ["connection", "verb"],
                                 registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.open_streams = Gauge("kubegate_open_streams", "Watches, followed logs and upgraded streams open now",
                                  ["connection"], registry=self.registry)


class MetricsStage(Stage):
    """First in the pipeline, so its on_end is last and counts refusals from every other stage."""

    name = "metrics"

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        # prometheus_client's labels() validates and locks on every call; the child it returns for a
        # label set never changes, so it is looked up once (this holds no more label sets than the metric).
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    async def on_response(self, flow: Flow) -> None:
        if flow.is_stream:
            flow.extras["metrics.stream"] = True
            self._child(self._m.open_streams, flow.connection.name).inc()

    async def on_end(self, flow: Flow) -> None:
        verb = flow.info.verb if flow.info else "unknown"
        resource = flow.info.resource_path if flow.info else ""
        code = str(flow.response_status or (flow.refusal.code if flow.refusal else 0))
        self._child(self._m.requests, flow.connection.name, verb, resource, code).inc()
        if flow.extras.pop("metrics.stream", False):
            self._child(self._m.open_streams, flow.connection.name).dec()
        else:
            self._child(self._m.latency, flow.connection.name, verb).observe(time.monotonic() - flow.started)
