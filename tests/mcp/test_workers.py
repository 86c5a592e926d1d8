"""MCP sessions across `kubegate serve --workers N`: a request reaching the worker that does not hold its
session is passed, unchanged and streamed, to the one that does; the owner authenticates it again."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx2
import pytest
from aiohttp import web
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client

from kubegate.mcp.routes import MCP
from kubegate.mcp.workers import Workers
from tests.conftest import World
from tests.e2e.gateways import GatewayProcess
from tests.mcp.clients import call

SESSION = uuid.uuid4().hex
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CLIENT = {"name": "t", "version": "1"}


@asynccontextmanager
async def served(app: web.Application, unix: Path | None = None) -> AsyncIterator[str]:
    """`app` on a Unix socket, or on a local TCP port: its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site: web.BaseSite = web.UnixSite(runner, str(unix)) if unix else web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield "" if unix else f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


class Owner:
    """A stand-in for the owning worker: it keeps what it was sent and streams its answer in two parts."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self.body = b""
        self.second_part = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.headers, self.body = dict(request.headers), await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Mcp-Session-Id": SESSION})
        await response.prepare(request)
        await response.write(b"event: message\ndata: first\n\n")
        try:
            await self.second_part.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        await response.write(b"event: message\ndata: second\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def forwarding(tmp_path: Path) -> AsyncIterator[tuple[Owner, Workers, str, dict[str, str]]]:
    """Worker 1's forwarder on a TCP port, worker 2's stand-in on its socket; what the forwarder received."""
    owner, received = Owner(), {}
    workers = Workers(tmp_path, live=lambda: ())
    owner_app = web.Application()
    owner_app.router.add_route("*", "/mcp", owner.handle)

    async def forward(request: web.Request) -> web.StreamResponse:
        received.update(request.headers)
        return await workers.forward(request, "2") or web.Response(status=404)

    forwarder = web.Application()
    forwarder.router.add_route("*", "/mcp", forward)
    async with served(owner_app, workers.socket_of("2")), served(forwarder) as url:
        yield owner, workers, url, received


async def test_a_request_is_passed_on_unchanged_and_its_answer_streamed_back(
    forwarding: tuple[Owner, Workers, str, dict[str, str]],
) -> None:
    owner, _, url, received = forwarding
    sent = {**ACCEPT, "Authorization": "Bearer the-callers-token", "Mcp-Session-Id": SESSION}
    async with (
        aiohttp.ClientSession() as client,
        client.post(url + "/mcp?x=1", headers=sent, data=b'{"jsonrpc":"2.0"}') as answer,
    ):
        assert answer.status == 200 and answer.headers["Mcp-Session-Id"] == SESSION
        assert answer.headers["Content-Type"] == "text/event-stream"
        first = await answer.content.readuntil(b"\n\n")
        assert first == b"event: message\ndata: first\n\n"  # before the owner has written the rest: streamed
        owner.second_part.set()
        assert await answer.content.read() == b"event: message\ndata: second\n\n"
    assert owner.body == b'{"jsonrpc":"2.0"}'
    assert owner.headers == received  # the same headers, the caller's token among them, and nothing added
    assert owner.headers["Authorization"] == "Bearer the-callers-token"


async def test_a_client_that_leaves_cancels_the_forwarded_request(
    forwarding: tuple[Owner, Workers, str, dict[str, str]],
) -> None:
    owner, _, url, _ = forwarding
    async with aiohttp.ClientSession() as client:
        answer = await client.post(url + "/mcp", headers={**ACCEPT, "Mcp-Session-Id": SESSION}, data=b"{}")
        assert await answer.content.readuntil(b"\n\n") == b"event: message\ndata: first\n\n"
        answer.close()
    await asyncio.wait_for(owner.cancelled.wait(), 30)


async def test_records_name_the_owner_until_its_session_ends(tmp_path: Path) -> None:
    live = {SESSION}
    one, two = Workers(tmp_path, lambda: live, name="1"), Workers(tmp_path, lambda: (), name="2")
    one.claim(SESSION)
    assert (one.owner(SESSION), two.owner(SESSION)) == ("1", "1")
    assert two.owner(uuid.uuid4().hex) is None and two.owner("../1.sock") is None
    assert (tmp_path / "workers").stat().st_mode & 0o777 == 0o700
    one.sweep()
    assert two.owner(SESSION) == "1"
    live.clear()  # the SDK ended the session (expired, deleted)
    one.sweep()
    assert two.owner(SESSION) is None


async def test_a_session_whose_owner_is_gone_is_forgotten(tmp_path: Path) -> None:
    one, two = Workers(tmp_path, lambda: (), name="1"), Workers(tmp_path, lambda: (), name="2")
    one.claim(SESSION)  # and worker 1 never listens on its socket
    seen: list[web.StreamResponse | None] = []

    async def forward(request: web.Request) -> web.StreamResponse:
        seen.append(await two.forward(request, "1"))
        return web.Response(status=404)

    app = web.Application()
    app.router.add_post("/mcp", forward)
    async with (
        served(app) as url,
        aiohttp.ClientSession() as client,
        client.post(url + "/mcp", headers={"Mcp-Session-Id": SESSION}, data=b"{}") as answer,
    ):
        assert answer.status == 404
    assert seen == [None] and two.owner(SESSION) is None


async def test_an_owner_that_takes_a_request_and_drops_it_gets_a_502_that_says_so(tmp_path: Path) -> None:
    workers = Workers(tmp_path, lambda: (), name="1")

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def forward(request: web.Request) -> web.StreamResponse:
        return await workers.forward(request, "2") or web.Response(status=404)

    owner = await asyncio.start_unix_server(drop, path=str(workers.socket_of("2")))
    app = web.Application()
    app.router.add_post("/mcp", forward)
    async with (
        owner,
        served(app) as url,
        aiohttp.ClientSession() as client,
        client.post(url + "/mcp", headers={"Mcp-Session-Id": SESSION}, data=b"{}") as answer,
    ):
        assert answer.status == 502
        assert "took the request and gave no answer" in (await answer.json())["error"]["message"]


@pytest.fixture
def two_workers(world: World, tmp_path: Path) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(world, tmp_path, workers=2)
    try:
        yield gateway
    finally:
        gateway.stop()


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


@pytest.mark.e2e
async def test_one_session_is_served_whichever_worker_a_request_reaches(
    world: World, two_workers: GatewayProcess
) -> None:
    ns = world.namespace("mcp-workers")
    world.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=mode=blue")
    user = f"workers-{uuid.uuid4().hex[:8]}"
    token = world.token(user)
    opened: list[str] = []

    async def session_id(response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers and not opened:
            opened.append(response.headers["mcp-session-id"])

    verify = ssl.create_default_context(cafile=str(two_workers.ca_file))
    http = httpx2.AsyncClient(
        verify=verify,
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30, read=60),
        limits=httpx2.Limits(max_keepalive_connections=0),  # each request on a new connection: any worker
        event_hooks={"response": [session_id]},
    )
    async with (
        http,
        streamable_http_client(two_workers.url + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        results = [await call(session, "get", resource="configmaps", name="cfg", namespace=ns) for _ in range(20)]
    assert all(not error and "mode: blue" in text for error, text in results), results

    [sid] = opened
    sockets = {path.stem: path for path in two_workers.worker_sockets()}
    assert len(sockets) == 2 and (two_workers.root / "state" / "workers").stat().st_mode & 0o777 == 0o700
    forwarded = {}
    for name, path in sockets.items():
        async with httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(uds=str(path))) as worker:
            scraped = await worker.get("http://worker/metrics")
            forwarded[name] = metric(scraped.text, "kubegate_mcp_forwarded_requests_total")
    assert sorted(forwarded.values())[0] == 0 and sorted(forwarded.values())[1] > 0, forwarded  # both served

    listed = json.loads(two_workers.cli(world, "sessions", "list", "--user", f"sandbox:{user}", "--output", "json"))
    [recorded] = listed["items"]
    shown = json.loads(two_workers.cli(world, "sessions", "show", recorded["id"], "--output", "json"))
    assert [e["data"]["mcp_session"] for e in shown["events"] if e["type"] == "tool_call"] == [sid] * 20


@pytest.mark.e2e
async def test_an_unknown_session_gets_404_and_the_owner_authenticates_forwarded_requests(
    world: World, two_workers: GatewayProcess
) -> None:
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    headers = {**ACCEPT, "Mcp-Protocol-Version": "2025-11-25", "Authorization": f"Bearer {world.token('pia')}"}
    verify = ssl.create_default_context(cafile=str(two_workers.ca_file))
    async with httpx2.AsyncClient(verify=verify, limits=httpx2.Limits(max_keepalive_connections=0)) as http:
        for _ in range(6):  # on new connections, so both workers answer some
            unknown = await http.post(
                two_workers.url + "/mcp", json=listing, headers={**headers, "Mcp-Session-Id": uuid.uuid4().hex}
            )
            assert unknown.status_code == 404 and "Session not found" in unknown.text
    # What a worker receives on its socket is an ordinary request: no token, no answer; another user's
    # token, no session.
    [first, *_] = two_workers.worker_sockets()
    async with httpx2.AsyncClient(transport=httpx2.AsyncHTTPTransport(uds=str(first)), timeout=30) as worker:
        opening = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        opened = await worker.post("http://worker/mcp", json=opening, headers=headers)
        assert opened.status_code == 200
        session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
        bare = {k: v for k, v in headers.items() if k != "Authorization"}
        assert (await worker.post("http://worker/mcp", json=listing, headers={**bare, **session})).status_code == 401
        eve = {**headers, **session, "Authorization": f"Bearer {world.token('eve')}"}
        assert (await worker.post("http://worker/mcp", json=listing, headers=eve)).status_code == 404
        own = await worker.post("http://worker/mcp", json=listing, headers={**headers, **session})
        assert own.status_code == 200 and '"name":"get"' in own.text.replace(" ", "")
    async with httpx2.AsyncClient(verify=verify, limits=httpx2.Limits(max_keepalive_connections=0)) as http:
        for _ in range(6):  # whichever worker it reaches, the session is pia's alone
            assert (await http.post(two_workers.url + "/mcp", json=listing, headers=eve)).status_code == 404
            own = await http.post(two_workers.url + "/mcp", json=listing, headers={**headers, **session})
            assert own.status_code == 200 and '"name":"get"' in own.text.replace(" ", "")


@pytest.mark.e2e
async def test_one_process_opens_no_socket_and_the_sweep_sees_the_sdks_sessions(world: World) -> None:
    """The sweep reads which sessions the SDK holds; this catches an SDK that keeps them elsewhere."""
    gateway = world.env.gateway
    assert gateway is not None and gateway.workers is None
    assert not (world.env.config.state_dir / "workers").exists()
    endpoint = gateway.runner.app[MCP]
    opening = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT},
    }
    headers = {**ACCEPT, "Authorization": f"Bearer {world.token('pia')}"}
    verify = ssl.create_default_context(cafile=str(gateway.ca_file))
    async with httpx2.AsyncClient(verify=verify, timeout=30) as http:
        opened = await http.post(gateway.url + "/mcp", json=opening, headers=headers)
        sid = opened.headers["mcp-session-id"]
        assert sid in endpoint.live_sessions()
        ended = await http.delete(
            gateway.url + "/mcp", headers={**headers, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-11-25"}
        )
        assert ended.status_code == 200
    for _ in range(100):  # the SDK forgets it once its handler returns, which can be after the client read 200
        if sid not in endpoint.live_sessions():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the SDK still holds the deleted session: {list(endpoint.live_sessions())}")
