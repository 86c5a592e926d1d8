"""Prometheus metrics: requests by connection, verb, resource and code; latency; open streams; policy
decisions by deciding rule and action; masked responses and masked values by profile; the recorder's queue
and losses; upstream latency; JWKS refreshes; access requests created, pending (read from the store, so
every replica's are counted) and decided, and the time to a decision.

Every label comes from a fixed set, never from what a caller wrote: a resource path or verb outside the
known ones is counted as "other", so no client can grow the registry (one time series per label set).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from kubegate.flow import Flow, FlowKey, Stage
from kubegate.policy.kubectl import RESOURCE_TYPES
from kubegate.policy.model import KNOWN_VERBS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from kubegate.approvals.model import AccessRequest
    from kubegate.approvals.service import ApprovalService
    from kubegate.identity.oidc import Verifier
    from kubegate.recording.recorder import Recorder

RESOURCES = frozenset(
    {rt.plural for rt in RESOURCE_TYPES.values()}
    | {
        "leases",
        "endpointslices",
        "ingressclasses",
        "priorityclasses",
        "csidrivers",
        "csinodes",
        "volumeattachments",
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "validatingadmissionpolicies",
        "apiservices",
        "certificatesigningrequests",
        "tokenreviews",
        "subjectaccessreviews",
        "selfsubjectreviews",
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "localsubjectaccessreviews",
        "controllerrevisions",
        "podtemplates",
        "runtimeclasses",
        "flowschemas",
        "prioritylevelconfigurations",
        "bindings",
        "componentstatuses",
    }
)
SUBRESOURCES = frozenset(
    {
        "",
        "exec",
        "attach",
        "portforward",
        "log",
        "status",
        "scale",
        "proxy",
        "binding",
        "eviction",
        "ephemeralcontainers",
        "resize",
        "token",
        "finalize",
        "approval",
    }
)
VERBS = KNOWN_VERBS | {"unknown"}
OTHER = "other"
DEFAULT_DENY = "(no rule)"
DECISION_OUTCOMES = frozenset({"approved", "denied", "expired", "revoked"})
REQUEST_KINDS = ("request", "scope")
SCRAPE_READ_TIMEOUT = 2.0  # a store read made for a scrape; longer, and the gauge says NaN (unknown)
log = logging.getLogger(__name__)


def labels(flow: Flow) -> tuple[str, str, str]:
    """(verb, resource, code) of a finished flow, each from a fixed set."""
    info = flow.info
    verb = info.verb if info is not None else "unknown"
    resource = ""
    if info is not None and info.is_resource_request:
        known = info.resource in RESOURCES and info.subresource in SUBRESOURCES
        resource = info.resource_path if known else OTHER
    code = flow.response_status or (flow.refusal.code if flow.refusal is not None else 0)
    return (verb if verb in VERBS else OTHER), resource, (str(code) if code in range(600) else OTHER)


class Metrics:
    """One registry per gateway, so several gateways (tests, workers) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kubegate_requests",
            "Requests handled, by outcome",
            ["connection", "verb", "resource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kubegate_request_duration_seconds",
            "Time to the end of the response (streams excluded)",
            ["connection", "verb"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.open_streams = Gauge(
            "kubegate_open_streams",
            "Watches, followed logs and upgraded streams open now",
            ["connection"],
            registry=self.registry,
        )
        # Rule names and profiles come from the operator's policy and masking config, never from callers.
        self.decisions = Counter(
            "kubegate_decisions",
            "Policy decisions, by deciding rule and action",
            ["rule", "action"],
            registry=self.registry,
        )
        self.upstream = Histogram(
            "kubegate_upstream_duration_seconds",
            "Time from forwarding to the cluster's response headers",
            ["connection"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.masked = Counter(
            "kubegate_masked_responses",
            "Responses sent through masking, by masking profile",
            ["profile"],
            registry=self.registry,
        )
        self.masked_values = Counter(
            "kubegate_masked_values",
            "Values masked in responses, by masking profile (a response masked under several profiles counts "
            "its values under each)",
            ["profile"],
            registry=self.registry,
        )
        self.mcp_forwarded = Counter(
            "kubegate_mcp_forwarded_requests",
            "MCP requests this worker passed to the worker holding their session (serve --workers N)",
            registry=self.registry,
        )
        self._refreshers: list[Callable[[], Awaitable[None]]] = []

    async def refresh(self) -> None:
        """Read what the store knows (for all replicas) into the gauges, before a scrape is rendered."""
        for refresh in self._refreshers:
            await refresh()

    def watch_approvals(self, service: ApprovalService) -> None:
        created = Counter("kubegate_approval_requests", "Access requests created", registry=self.registry)
        decided = Counter(
            "kubegate_approval_decisions", "Access requests decided, by outcome", ["outcome"], registry=self.registry
        )
        waited = Histogram(
            "kubegate_approval_decision_seconds",
            "Time from an access request to its approval or denial",
            registry=self.registry,
            buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
        )

        def observe(request: AccessRequest) -> None:
            if request.state == "pending":
                created.inc()
                return
            decided.labels(request.state if request.state in DECISION_OUTCOMES else OTHER).inc()
            if request.state in ("approved", "denied") and request.decided_at is not None:
                waited.observe(max(0.0, request.decided_at - request.created_at))

        service.observer = observe
        pending = Gauge(
            "kubegate_approvals_pending",
            "Access requests waiting for a decision on any replica, by kind (read from the store when scraped)",
            ["kind"],
            registry=self.registry,
        )

        async def count_pending() -> None:
            try:
                counts = await asyncio.wait_for(service.pending_counts(), SCRAPE_READ_TIMEOUT)
            except Exception as exc:  # a scrape must still answer; the gauge says it does not know
                log.warning("cannot count pending access requests for /metrics: %s", type(exc).__name__)
                for kind in REQUEST_KINDS:
                    pending.labels(kind).set(math.nan)
                return
            for kind in REQUEST_KINDS:
                pending.labels(kind).set(counts.get(kind, 0))

        self._refreshers.append(count_pending)

    def watch_verifier(self, verifier: Verifier) -> None:
        """kubegate_jwks_refreshes_total{issuer, outcome}, read from the verifier when scraped (issuers come
        from the config)."""

        class Refreshes(Collector):
            def collect(self) -> Iterator[CounterMetricFamily]:
                family = CounterMetricFamily(
                    "kubegate_jwks_refreshes", "JWKS fetches by issuer and outcome", labels=["issuer", "outcome"]
                )
                for (issuer, outcome), count in sorted(verifier.refreshes().items()):
                    family.add_metric([issuer, outcome], count)
                yield family

        self.registry.register(Refreshes())

    def watch_recorder(self, recorder: Recorder) -> None:
        """Gauges read from the recorder when scraped: its queue, its commits and the events it lost."""
        for name, doc, read in (
            (
                "kubegate_recorder_queue_depth",
                "Events waiting for the recorder's next commit",
                lambda: recorder.queue_depth,
            ),
            ("kubegate_recorder_commits", "Transactions the recorder committed", lambda: recorder.commits),
            (
                "kubegate_recorder_lost_events",
                "Events that could not be recorded (store errors)",
                lambda: recorder.lost_events,
            ),
            ("kubegate_store_healthy", "1 while the recorder's last write succeeded", lambda: recorder.healthy),
        ):
            Gauge(name, doc, registry=self.registry).set_function(read)
        commit = Histogram(
            "kubegate_recorder_commit_seconds",
            "Time to write and commit one batch of events",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        recorder.on_commit = commit.observe


STREAMING: FlowKey[bool] = FlowKey("metrics.stream")  # counted among the open streams until it ends
UPSTREAM_STARTED: FlowKey[float] = FlowKey("upstream-latency")


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
            flow.keep(STREAMING, True)
            self._child(self._m.open_streams, flow.connection.name).inc()

    async def on_end(self, flow: Flow) -> None:
        verb, resource, code = labels(flow)
        self._child(self._m.requests, flow.connection.name, verb, resource, code).inc()
        decision = flow.decision
        if decision is not None:
            for rule in decision.deciding_rules or (DEFAULT_DENY,):
                self._child(self._m.decisions, rule, decision.action).inc()
        masked = flow.masked
        if masked is not None and flow.refusal is None:
            for profile in masked.profiles:
                self._child(self._m.masked, profile).inc()
                if masked.values > 0:
                    self._child(self._m.masked_values, profile).inc(masked.values)
        if flow.drop(STREAMING):
            self._child(self._m.open_streams, flow.connection.name).dec()
        else:
            self._child(self._m.latency, flow.connection.name, verb).observe(time.monotonic() - flow.started)


class UpstreamLatencyStage(Stage):
    """Last in the pipeline: its on_request is the last hook before forwarding and its on_response the
    first once the cluster answered, so the time between is the upstream call's."""

    name = "upstream-latency"

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics
        self._children: dict[str, Any] = {}

    async def on_request(self, flow: Flow) -> None:
        flow.keep(UPSTREAM_STARTED, time.monotonic())

    async def on_response(self, flow: Flow) -> None:
        started = flow.drop(UPSTREAM_STARTED)
        if started is not None:
            name = flow.connection.name
            child = self._children.get(name) or self._children.setdefault(name, self._m.upstream.labels(name))
            child.observe(time.monotonic() - started)
