"""Prometheus metrics: requests by connection, verb, resource and code; latency; open streams.

Every label comes from a fixed set, never from what a caller wrote: a resource path or verb outside the
known ones is counted as "other", so no client can grow the registry (one time series per label set).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from kubegate.flow import Flow, Stage
from kubegate.policy.kubectl import RESOURCE_TYPES
from kubegate.policy.model import KNOWN_VERBS

RESOURCES = frozenset({rt.plural for rt in RESOURCE_TYPES.values()} | {
    "leases", "endpointslices", "ingressclasses", "priorityclasses", "csidrivers", "csinodes", "volumeattachments",
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
    "apiservices", "certificatesigningrequests", "tokenreviews", "subjectaccessreviews", "selfsubjectreviews",
    "selfsubjectaccessreviews", "selfsubjectrulesreviews", "localsubjectaccessreviews", "controllerrevisions",
    "podtemplates", "runtimeclasses", "flowschemas", "prioritylevelconfigurations", "bindings", "componentstatuses"})
SUBRESOURCES = frozenset({"", "exec", "attach", "portforward", "log", "status", "scale", "proxy", "binding",
                          "eviction", "ephemeralcontainers", "resize", "token", "finalize", "approval"})
VERBS = KNOWN_VERBS | {"unknown"}
OTHER = "other"


def labels(flow: Flow) -> tuple[str, str, str]:
    """(verb, resource, code) of a finished flow, each from a fixed set."""
    info = flow.info
    verb = info.verb if info is not None else "unknown"
    resource = ""
    if info is not None and info.is_resource_request:
        known = info.resource in RESOURCES and info.subresource in SUBRESOURCES
        resource = info.resource_path if known else OTHER
    code = flow.response_status or (getattr(flow.refusal, "code", 500) if flow.refusal is not None else 0)
    return (verb if verb in VERBS else OTHER), resource, (str(code) if code in range(600) else OTHER)


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
        verb, resource, code = labels(flow)
        self._child(self._m.requests, flow.connection.name, verb, resource, code).inc()
        if flow.extras.pop("metrics.stream", False):
            self._child(self._m.open_streams, flow.connection.name).dec()
        else:
            self._child(self._m.latency, flow.connection.name, verb).observe(time.monotonic() - flow.started)
