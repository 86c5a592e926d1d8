"""A real kubectl request through a gateway with tracing on, to a real kube-apiserver with tracing on: the
gateway's OTLP export holds the request's span, a child span per stage and the upstream call's span, and
the kube-apiserver's own export shows it read the W3C traceparent kubegate sent.

The world's cluster does not trace, so this test runs a control plane of its own whose tracing config
points at a receiver here (kube-apiserver exports over OTLP/gRPC only: tests/e2e/otlp.py).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubegate.sandbox.envtest import ControlPlane, developers_are_admins
from tests.conftest import KUBECTL, World, kubectl_env
from tests.e2e.gateways import GatewayProcess
from tests.e2e.otlp import Spans, otlp_grpc_receiver, otlp_http_receiver

pytestmark = pytest.mark.e2e
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STAGES = (  # kubegate/app.py's pipeline, each with a span per request, response and end hook it has
    "access-log",
    "metrics",
    "authentication",
    "session",
    "requestinfo",
    "upgrade",
    "body",
    "policy",
    "approval",
    "recorder",
    "masking",
    "upstream-access",
    "upstream-latency",
)


@pytest.fixture
def traced_cluster(tmp_path: Path) -> Iterator[tuple[ControlPlane, Spans]]:
    with otlp_grpc_receiver() as (endpoint, spans):
        config = tmp_path / "apiserver-tracing.yaml"
        config.write_text(
            "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: TracingConfiguration\n"
            f"endpoint: {endpoint}\nsamplingRatePerMillion: 1000000\n"
        )
        control = ControlPlane(tmp_path / "control-plane", extra_args=(f"--tracing-config-file={config}",)).start()
        try:
            control.apply(developers_are_admins())
            yield control, spans
        finally:
            control.stop()


def attributes(span: Any) -> dict[str, Any]:
    return {a.key: a.value.string_value or a.value.int_value for a in span.attributes}


def wait_for(find: Any, what: str, timeout: float = 30) -> Any:
    """Exporters batch (kube-apiserver every 5s): poll what a receiver has until `find` finds it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} arrived within {timeout:.0f}s")


def test_a_kubectl_request_is_traced_through_kubegate_into_kube_apiserver(
    world: World, tmp_path: Path, traced_cluster: tuple[ControlPlane, Spans]
) -> None:
    control, apiserver_spans = traced_cluster
    cluster_kubeconfig = control.write_kubeconfig(tmp_path / "cluster.kubeconfig")
    connection = {"name": world.env.connection, "auth": {"kubeconfig": {"path": str(cluster_kubeconfig)}}}
    with otlp_http_receiver() as (url, spans):
        gateway = GatewayProcess(
            world,
            tmp_path / "gateway",
            config={
                "connections": [connection],
                "tracing": {"otlp_endpoint": url, "service_name": "kubegate-e2e"},
            },
        )
        try:
            kubeconfig = gateway.kubeconfig(tmp_path / "carol.kubeconfig", world.token("carol", ("developers",)))
            done = subprocess.run(
                [KUBECTL, f"--kubeconfig={kubeconfig}", "get", "namespace", "default", "-o", "name"],
                capture_output=True,
                text=True,
                timeout=60,
                env=kubectl_env(),
                check=False,
            )
            assert (done.returncode, done.stdout) == (0, "namespace/default\n"), done.stderr
        finally:
            gateway.stop()  # a clean stop flushes the gateway's spans
        ours = spans.of("kubegate-e2e")

    path = "/api/v1/namespaces/default"
    requests = [s for s in ours if s.name == "kubegate request" and attributes(s).get("url.path") == path]
    assert len(requests) == 1, sorted({s.name for s in ours})
    request = requests[0]
    assert request.kind == SERVER and not request.parent_span_id  # kubectl sends no traceparent: a root
    assert attributes(request)["k8s.verb"] == "get" and attributes(request)["http.response.status_code"] == 200
    assert attributes(request)["enduser.id"] == "sandbox:carol" and attributes(request)["kubegate.decision"] == "allow"
    children = [s for s in ours if s.trace_id == request.trace_id and s.parent_span_id == request.span_id]
    names = {s.name for s in children}
    assert {name.split(" ")[0] for name in names} == {*STAGES, "upstream"}, names  # every stage, nothing else
    for stage in ("authentication", "requestinfo", "policy", "approval", "recorder", "masking", "upstream-access"):
        assert f"{stage} on_request" in names, names
    assert {"masking on_response", "recorder on_end", "metrics on_end", "access-log on_end"} <= names
    (upstream,) = [s for s in children if s.name == "upstream GET"]
    assert upstream.kind == CLIENT and attributes(upstream)["http.response.status_code"] == 200

    # kube-apiserver continues a caller's trace only for system:masters and system:monitoring (kubegate is
    # neither): it starts a trace of its own whose server span links the context it read from `traceparent`.
    # That link is what shows the real server received kubegate's upstream span context (and accepted it: a
    # traceparent it cannot parse is dropped without a trace).
    def linked() -> list[Any]:
        return [
            s
            for s in apiserver_spans.of("apiserver")
            if any(link.trace_id == upstream.trace_id and link.span_id == upstream.span_id for link in s.links)
        ]

    (served,) = wait_for(linked, "kube-apiserver span linking kubegate's upstream span")
    assert served.kind == SERVER and attributes(served)["url.path"] == path
    assert attributes(served)["http.response.status_code"] == 200
