"""Traces: a request span with a child per stage hook and one for the upstream call, exported over OTLP to a
receiver here; the cluster gets the upstream span's trace context, and a caller's traceparent is the parent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from kubegate.config import TracingConfig
from kubegate.flow import Flow, Stage
from kubegate.identity.stage import AuthenticationStage
from kubegate.kube.stage import RequestInfoStage
from kubegate.proxy.pipeline import Pipeline
from kubegate.tracing import Tracing
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from tests.flows import flow_of
from tests.proxy.test_pipeline import FakeVerifier

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Chunks(Stage):
    """A stage with a chunk hook: it must keep it, and chunks must not get spans."""

    name = "chunks"

    def __init__(self) -> None:
        self.seen = 0

    async def on_chunk(self, flow: Flow, data: bytes) -> bytes:
        self.seen += 1
        return data


async def serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def world() -> AsyncIterator[dict[str, Any]]:
    spans: list[Any] = []
    upstream_headers: list[CIMultiDict[str]] = []

    async def receive(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest.FromString(await request.read())
        spans.extend(s for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans)
        return web.Response(content_type="application/x-protobuf", body=b"")

    async def cluster(request: web.Request) -> web.Response:
        upstream_headers.append(CIMultiDict(request.headers))
        return web.json_response({"kind": "PodList", "items": []})

    collector_app, cluster_app = web.Application(), web.Application()
    collector_app.router.add_post("/v1/traces", receive)
    cluster_app.router.add_route("*", "/{tail:.*}", cluster)
    collector, upstream = await serve(collector_app), await serve(cluster_app)
    tracing = Tracing(TracingConfig(otlp_endpoint=str(collector.make_url("/v1/traces"))))
    chunks = Chunks()
    pipeline = Pipeline(tracing.instrument([AuthenticationStage(FakeVerifier()), RequestInfoStage(), chunks]))
    conn = Connection(
        ConnectionConfig(name="up", server=str(upstream.make_url("")).rstrip("/"), auth={"token": "gateway-token"})
    )

    async def handle(request: web.Request) -> web.StreamResponse:
        flow = await flow_of(request, conn)
        return await pipeline.run(flow)

    gateway_app = web.Application()
    gateway_app.router.add_route("*", "/{tail:.*}", handle)
    gateway = await serve(gateway_app)
    yield {"gateway": gateway, "tracing": tracing, "spans": spans, "upstream": upstream_headers, "chunks": chunks}
    await gateway.close()
    await conn.close()
    await upstream.close()
    await collector.close()


async def test_a_request_is_a_trace_of_its_stages_and_upstream_call(world: dict[str, Any]) -> None:
    headers = {"Authorization": "Bearer good", "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(world["gateway"].make_url("/api/v1/namespaces/shop/pods"), headers=headers) as resp,
    ):
        assert resp.status == 200
        await resp.read()
    await asyncio.to_thread(world["tracing"].shutdown)  # flushes to the receiver
    spans = {s.name: s for s in world["spans"]}
    assert {"kubegate request", "authentication on_request", "requestinfo on_request", "upstream GET"} <= set(spans)
    assert not any("chunk" in name for name in spans) and world["chunks"].seen >= 1
    root = spans["kubegate request"]
    assert root.trace_id.hex() == CALLER_TRACE and root.parent_span_id.hex() == CALLER_SPAN
    for name in ("authentication on_request", "requestinfo on_request", "upstream GET"):
        assert spans[name].trace_id == root.trace_id and spans[name].parent_span_id == root.span_id
    attributes = {a.key: a.value for a in root.attributes}
    assert attributes["enduser.id"].string_value == "idp:alice"
    assert attributes["k8s.verb"].string_value == "list" and attributes["k8s.namespace"].string_value == "shop"
    assert attributes["http.response.status_code"].int_value == 200
    traceparent = world["upstream"][0]["traceparent"]
    assert traceparent == f"00-{CALLER_TRACE}-{spans['upstream GET'].span_id.hex()}-01"
    assert "good" not in str(world["spans"])  # the token is in no span


async def test_a_trace_kubegate_starts_reaches_the_cluster_as_w3c_level_one(world: dict[str, Any]) -> None:
    """kubectl sends no traceparent: kubegate's own root carries the SDK's random-trace-id flag, which
    kube-apiserver's propagator refuses in a version-00 traceparent, so only the sampled flag goes upstream."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(world["gateway"].make_url("/api/v1/pods"), headers={"Authorization": "Bearer good"}) as resp,
    ):
        assert resp.status == 200
        await resp.read()
    await asyncio.to_thread(world["tracing"].shutdown)
    spans = {s.name: s for s in world["spans"]}
    root, upstream = spans["kubegate request"], spans["upstream GET"]
    assert not root.parent_span_id and upstream.parent_span_id == root.span_id
    sent = world["upstream"][0]["traceparent"]
    assert sent == f"00-{upstream.trace_id.hex()}-{upstream.span_id.hex()}-01"


async def test_a_refused_request_is_a_failed_span_and_never_reaches_the_cluster(world: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(world["gateway"].make_url("/api/v1/pods"), headers={"Authorization": "Bearer bad"}) as resp,
    ):
        assert resp.status == 401
    await asyncio.to_thread(world["tracing"].shutdown)
    spans = {s.name: s for s in world["spans"]}
    assert spans["kubegate request"].status.code == 2  # STATUS_CODE_ERROR
    assert spans["authentication on_request"].status.code == 2
    assert "upstream GET" not in spans and world["upstream"] == []


def test_a_bad_endpoint_names_the_field(tmp_path: Any) -> None:
    from kubegate.config import load_config
    from kubegate.configbase import ConfigError

    path = tmp_path / "kubegate.yaml"
    path.write_text("tracing: {otlp_endpoint: 'collector:4318'}\n")
    with pytest.raises(ConfigError, match=r"tracing\.otlp_endpoint: must be an http:// or https:// URL"):
        load_config(path)
