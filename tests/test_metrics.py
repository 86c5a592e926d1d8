"""Metric labels come from fixed sets: whatever paths and methods callers send, the series stay few."""

from __future__ import annotations

from types import SimpleNamespace

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow, MaskReport
from kubegate.kube.requestinfo import parse_request_info
from kubegate.kube.status import Refused
from kubegate.metrics import Metrics, MetricsStage


def _flow(method: str, path: str, status: int = 200) -> Flow:
    flow = Flow(
        request=make_mocked_request(method, path),
        connection=SimpleNamespace(name="dev"),  # type: ignore[arg-type]
        method=method,
        raw_path=path,
        query_string="",
        headers=CIMultiDict(),
        body=b"",
    )
    flow.info = parse_request_info(method, path, "")
    flow.response_status = status
    return flow


def _series(metrics: Metrics) -> list[dict[str, str]]:
    return [
        s.labels
        for m in metrics.registry.collect()
        if m.name == "kubegate_requests"
        for s in m.samples
        if s.name == "kubegate_requests_total"
    ]


async def test_resources_and_verbs_outside_the_known_sets_are_one_label() -> None:
    metrics = Metrics()
    stage = MetricsStage(metrics)
    for i in range(200):
        await stage.on_end(_flow("GET", f"/api/v1/namespaces/ns/made-up-{i}/x{'y' * 500}"))
        await stage.on_end(_flow("GET", f"/apis/example.com/v1/widgets{i}"))
        await stage.on_end(_flow("GET", f"/api/v1/namespaces/ns/pods/p/sub{i}"))
        await stage.on_end(_flow(f"BREW{i}", f"/version{i}"))
    await stage.on_end(_flow("GET", "/api/v1/namespaces/ns/pods/p/log"))
    refused = _flow("DELETE", "/api/v1/namespaces/ns")
    refused.response_status, refused.refusal = 0, Refused(403, "no")
    await stage.on_end(refused)
    series = sorted((s["verb"], s["resource"], s["code"]) for s in _series(metrics))
    assert series == [
        ("delete", "namespaces", "403"),
        ("get", "other", "200"),
        ("get", "pods/log", "200"),
        ("list", "other", "200"),
        ("other", "", "200"),
    ]


async def test_decisions_are_counted_by_deciding_rule_and_masked_responses_by_profile() -> None:
    from kubegate.policy.decision import Decision, RuleMatch

    metrics = Metrics()
    stage = MetricsStage(metrics)
    allowed = _flow("GET", "/api/v1/namespaces/ns/secrets")
    allowed.decision = Decision(
        "allow", (RuleMatch("devs", "allow", []), RuleMatch("audit", "log", [])), "", masks=("secret-values",)
    )
    allowed.masked = MaskReport(("secret-values", "env-credentials"), values=3)
    denied = _flow("DELETE", "/api/v1/namespaces/ns", status=0)
    denied.decision = Decision("deny", (), "no rule allows this")
    denied.refusal = Refused(403, "no")
    for flow in (allowed, allowed, denied):
        await stage.on_end(flow)
    value = metrics.registry.get_sample_value
    assert value("kubegate_decisions_total", {"rule": "devs", "action": "allow"}) == 2
    assert value("kubegate_decisions_total", {"rule": "audit", "action": "allow"}) is None
    assert value("kubegate_decisions_total", {"rule": "(no rule)", "action": "deny"}) == 1
    assert value("kubegate_masked_responses_total", {"profile": "secret-values"}) == 2
    assert value("kubegate_masked_values_total", {"profile": "secret-values"}) == 6  # each response's, added once
    assert value("kubegate_masked_values_total", {"profile": "env-credentials"}) == 6


async def test_upstream_latency_is_the_time_from_forwarding_to_the_answer() -> None:
    from kubegate.metrics import UpstreamLatencyStage

    metrics = Metrics()
    stage = UpstreamLatencyStage(metrics)
    flow = _flow("GET", "/api/v1/pods")
    await stage.on_request(flow)
    await stage.on_response(flow)
    refused = _flow("GET", "/api/v1/pods")  # refused before forwarding: no upstream call to time
    await stage.on_response(refused)
    assert metrics.registry.get_sample_value("kubegate_upstream_duration_seconds_count", {"connection": "dev"}) == 1


def test_jwks_refreshes_are_read_from_the_verifier_by_issuer_and_outcome() -> None:
    metrics = Metrics()
    metrics.watch_verifier(
        SimpleNamespace(
            refreshes=lambda: {
                ("https://idp", "ok"): 3,  # type: ignore[arg-type]
                ("https://idp", "failed"): 1,
            }
        )
    )
    value = metrics.registry.get_sample_value
    assert value("kubegate_jwks_refreshes_total", {"issuer": "https://idp", "outcome": "ok"}) == 3
    assert value("kubegate_jwks_refreshes_total", {"issuer": "https://idp", "outcome": "failed"}) == 1
