"""The pipeline against a tiny upstream: stage order, streaming, refusals, and cancellation."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from kubegate.flow import Flow, FlowKey, Message, Stage
from kubegate.identity.model import Identity
from kubegate.identity.stage import AuthenticationStage
from kubegate.kube.stage import RequestInfoStage
from kubegate.kube.status import Refused
from kubegate.proxy.pipeline import Pipeline
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from tests.flows import bare_flow, flow_of


class Upstream:
    def __init__(self) -> None:
        self.seen: list[web.Request] = []
        self.watch_closed = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        if request.query.get("watch"):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write(b'{"type":"ADDED","object":{"kind":"Pod"}}\n')
            try:
                await asyncio.sleep(3600)
            finally:
                self.watch_closed.set()
        if request.path.endswith("/slow"):
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            await resp.write(b"one\n")
            await self.release.wait()
            await resp.write(b"two\n")
            return resp
        if request.path.endswith("/gz"):
            body = gzip.compress(b'{"kind":"PodList","items":[]}')
            seen = request.headers.get("Accept-Encoding", "")
            return web.Response(
                body=body,
                headers={
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/json",
                    "X-Accept-Encoding-Seen": seen,
                },
            )
        return web.json_response({"kind": "PodList", "items": [], "path": request.path}, headers={"Audit-Id": "a1"})


class FakeVerifier:
    async def verify(self, token: str) -> Identity:
        if token != "good":
            from kubegate.identity.model import AuthError

            raise AuthError("token signature is invalid")
        return Identity(issuer="https://idp", subject="alice", username="idp:alice", groups=("dev",))


class Trace(Stage):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def on_request(self, flow: Flow) -> None:
        self.log.append(f"{self.name}.request")

    async def on_response(self, flow: Flow) -> None:
        self.log.append(f"{self.name}.response")

    async def on_chunk(self, flow: Flow, data: bytes) -> bytes:
        self.log.append(f"{self.name}.chunk")
        return data

    async def on_end(self, flow: Flow) -> None:
        self.log.append(f"{self.name}.end")


BUFFER: FlowKey[bytearray] = FlowKey("upper")


class Upper(Stage):
    """Holds the whole body and rewrites it, as masking does."""

    name = "upper"

    async def on_response(self, flow: Flow) -> None:
        flow.rewrites_body = True
        flow.keep(BUFFER, bytearray())

    async def on_chunk(self, flow: Flow, data: bytes) -> bytes:
        buffer = flow.kept(BUFFER)
        assert buffer is not None
        buffer += data
        return b""

    async def on_eof(self, flow: Flow) -> bytes:
        buffer = flow.drop(BUFFER) or bytearray()
        if b"refuse" in buffer:
            raise Refused(502, "cannot rewrite this body")
        return bytes(buffer).upper()


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, TestServer]]:
    up = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up.handle)
    server = TestServer(app)
    await server.start_server()
    yield up, server
    await server.close()


async def gateway(server: TestServer, stages: list[Stage]) -> tuple[TestServer, Connection]:
    conn = Connection(
        ConnectionConfig(name="up", server=str(server.make_url("")).rstrip("/"), auth={"token": "gateway-token"})
    )
    pipeline = Pipeline([AuthenticationStage(FakeVerifier()), RequestInfoStage(), *stages])

    async def handle(request: web.Request) -> web.StreamResponse:
        flow = await flow_of(request, conn)
        return await pipeline.run(flow)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    gw = TestServer(app, handler_cancellation=True)  # as start_gateway configures the real listener
    await gw.start_server()
    return gw, conn


async def fetch(gw: TestServer, path: str, token: str = "good", **kw: Any) -> tuple[int, bytes, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.make_url(path), headers={"Authorization": f"Bearer {token}"}, **kw) as r,
    ):
        return r.status, await r.read(), r.headers


async def test_hooks_run_in_order_and_response_hooks_in_reverse(upstream: Any) -> None:
    up, server = upstream
    log: list[str] = []
    gw, conn = await gateway(server, [Trace("a", log), Trace("b", log)])
    status, body, headers = await fetch(gw, "/api/v1/namespaces/x/pods")
    assert status == 200 and b"PodList" in body and headers["Audit-Id"] == "a1"
    assert log == ["a.request", "b.request", "b.response", "a.response", "b.chunk", "a.chunk", "b.end", "a.end"]
    sent = up.seen[-1].headers
    assert sent["Authorization"] == "Bearer gateway-token" and sent["Impersonate-User"] == "idp:alice"
    await gw.close()
    await conn.close()


async def test_refusal_still_reaches_every_on_end_and_nothing_is_forwarded(upstream: Any) -> None:
    up, server = upstream
    log: list[str] = []
    gw, conn = await gateway(server, [Trace("a", log)])
    status, body, _ = await fetch(gw, "/api/v1/namespaces/x/pods", token="bad")
    assert status == 401 and b"token signature is invalid" in body and b'"kind":"Status"' in body
    assert log == ["a.end"] and not up.seen
    await gw.close()
    await conn.close()


async def test_a_stage_holding_the_body_can_rewrite_it_or_refuse_cleanly(upstream: Any) -> None:
    _, server = upstream
    gw, conn = await gateway(server, [Upper()])
    status, body, headers = await fetch(gw, "/api/v1/namespaces/x/pods")
    assert status == 200 and b"PODLIST" in body
    assert int(headers.get("Content-Length", len(body))) == len(body)
    status, body, _ = await fetch(gw, "/api/v1/namespaces/refuse/pods")
    assert status == 502 and b"cannot rewrite this body" in body
    await gw.close()
    await conn.close()


async def test_streams_flow_chunk_by_chunk(upstream: Any) -> None:
    up, server = upstream
    gw, conn = await gateway(server, [])
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.make_url("/api/v1/namespaces/x/pods/p/slow"), headers={"Authorization": "Bearer good"}) as r,
    ):
        assert await r.content.readline() == b"one\n"
        up.release.set()
        assert await r.content.readline() == b"two\n"
    await gw.close()
    await conn.close()


async def test_client_leaving_a_watch_cancels_the_upstream_call(upstream: Any) -> None:
    up, server = upstream
    gw, conn = await gateway(server, [])
    async with aiohttp.ClientSession() as s:
        r = await s.get(gw.make_url("/api/v1/namespaces/x/pods?watch=1"), headers={"Authorization": "Bearer good"})
        assert b"ADDED" in await r.content.readline()
        r.close()
    await asyncio.wait_for(up.watch_closed.wait(), 10)
    await gw.close()
    await conn.close()


async def test_compressed_bodies_pass_through_as_the_upstream_sent_them(upstream: Any) -> None:
    _, server = upstream
    gw, conn = await gateway(server, [])
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        async with s.get(
            gw.make_url("/api/v1/namespaces/x/pods/gz"),
            headers={"Authorization": "Bearer good", "Accept-Encoding": "gzip"},
        ) as r:
            raw = await r.read()
            assert r.headers["Content-Encoding"] == "gzip" and r.headers["X-Accept-Encoding-Seen"] == "gzip"
        assert gzip.decompress(raw) == b'{"kind":"PodList","items":[]}'
        async with s.get(gw.make_url("/api/v1/namespaces/x/pods/p"), headers={"Authorization": "Bearer good"}) as r:
            assert "Content-Encoding" not in r.headers  # no Accept-Encoding from the client, none added upstream
    await gw.close()
    await conn.close()


async def test_unreachable_upstream_is_a_502_status() -> None:
    conn = Connection(ConnectionConfig(name="down", server="http://127.0.0.1:9", auth={"token": "t"}))
    pipeline = Pipeline([AuthenticationStage(FakeVerifier()), RequestInfoStage()])
    app = web.Application()

    async def handle(request: web.Request) -> web.StreamResponse:
        flow = Flow(
            request=request,
            connection=conn,
            method="GET",
            raw_path="/api/v1/pods",
            query_string="",
            headers=CIMultiDict(),
        )
        return await pipeline.run(flow)

    app.router.add_get("/", handle)
    gw = TestServer(app)
    await gw.start_server()
    status, body, _ = await fetch(gw, "/")
    assert status == 502 and b"could not reach the API server of connection down" in body
    await gw.close()
    await conn.close()


class Relay(Stage):
    """Tags every message it passes; `holds` keeps the first cluster message back until the stream ends."""

    def __init__(self, name: str, log: list[str], holds: bool = False) -> None:
        self.name, self.log, self.holds = name, log, holds
        self.held: list[Message] = []

    async def on_message(self, flow: Flow, message: Message) -> list[Message]:
        self.log.append(f"{self.name}.{'client' if message.from_client else 'cluster'}")
        if self.holds and not message.from_client and not self.held:
            self.held.append(message)
            return []
        return [message.replaced(message.data + self.name.encode())]

    async def on_stream_end(self, flow: Flow) -> list[Message]:
        self.log.append(f"{self.name}.stream_end")
        held, self.held = self.held, []
        return held


async def test_stream_messages_take_the_request_and_response_ways_and_held_ones_pass_only_later_stages() -> None:
    log: list[str] = []
    pipeline = Pipeline([Relay("a", log), Relay("b", log, holds=True), Relay("c", log)])
    flow = bare_flow()
    [up] = await pipeline.message(flow, Message(True, 0, b"in:"))
    assert up.data == b"in:abc" and up.raw is None and log == ["a.client", "b.client", "c.client"]
    log.clear()
    assert await pipeline.message(flow, Message(False, 1, b"out:")) == []
    assert log == ["c.cluster", "b.cluster"]
    log.clear()
    [tail] = await pipeline.stream_end(flow)
    assert tail.data == b"out:ca", "what b held went on through a only, after c had seen it"
    assert log == ["c.stream_end", "b.stream_end", "a.cluster", "a.stream_end"]
