"""The upgrade gate and bridge: framing intact both ways, output masked as it flows, pings end to end, refusals
relayed and never tunnelled, SPDY retries answered once.

Two tiers. Against a tiny WebSocket upstream (`fake`), which speaks kubegate's own channel codec, for what only
kubegate decides (masking across frames, base64 framing, redirects, recording). Against the real kube-apiserver
and its kubelet stand-in (`world`), for every verdict that depends on how a cluster answers an upgrade: how it
refuses one, whether pings cross it, whether the legacy port-forward protocol reaches the pod, and, from its
audit log, that nothing the gate or a refusal stopped ever reached it."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer, make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow, Stage
from kubegate.identity.model import Identity
from kubegate.identity.stage import AuthenticationStage
from kubegate.kube import channels
from kubegate.kube import portforward as pf
from kubegate.kube.requestinfo import parse_request_info
from kubegate.kube.stage import RequestInfoStage
from kubegate.kube.status import Refused
from kubegate.masking.config import MaskingConfig
from kubegate.masking.marker import MARKER
from kubegate.masking.masker import Masker
from kubegate.masking.stage import MaskingStage
from kubegate.policy.decision import Decision
from kubegate.proxy.config import StreamsConfig
from kubegate.proxy.pipeline import Pipeline
from kubegate.proxy.upgrade import MAX_REMEMBERED, UpgradeBridge, UpgradeGate
from kubegate.recording.stage import RecorderStage, SessionStage
from kubegate.sandbox.envtest import GATEWAY_USER
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from tests.conftest import World
from tests.flows import flow_of

EXEC = "/api/v1/namespaces/ns/pods/p/exec?command=sh&stdin=true&stdout=true"
PASSWORD = "hunter2hunter2"


class Verifier:
    def __init__(self) -> None:
        self.expires_at = 0.0

    async def verify(self, token: str) -> Identity:
        return Identity(issuer="https://idp", subject="alice", username="idp:alice", expires_at=self.expires_at)


class Decide(Stage):
    name = "policy"

    async def on_request(self, flow: Flow) -> None:
        flow.decision = Decision("allow", (), "allowed", masks=("credentials-in-text",))


@dataclass
class Recorder:
    """Collects what RecorderStage records, in memory."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    healthy: bool = True
    lost_events: int = 0
    max_body_bytes: int = 64 * 1024
    clock: Any = time.monotonic

    def session_for(self, flow: Flow) -> str:
        return "s1"

    async def record_event(self, session_id: str, type: str, data: dict[str, Any], **kw: Any) -> int:
        self.events.append((type, data))
        return len(self.events)

    def of(self, type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == type]

    async def settled(self, type: str) -> list[dict[str, Any]]:
        """The events of a type, once the bridge has written them (it does when the stream is over)."""
        for _ in range(500):
            if self.of(type):
                break
            await asyncio.sleep(0.01)
        return self.of(type)


class Upstream:
    """exec: echoes stdin to stdout (a CLOSE of stdin ends with exit 3); portforward: legacy channels."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.pings: list[bytes] = []
        self.closed_stdin = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path_qs)
        if request.query.get("deny"):
            return web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 403,
                    "reason": "Forbidden",
                    "message": 'pods "p" is forbidden: no exec',
                },
                status=403,
            )
        if request.path.endswith("/redirect"):
            raise web.HTTPFound("/elsewhere")
        ws = web.WebSocketResponse(protocols=(channels.V5, channels.BASE64, channels.V4), autoping=False)
        await ws.prepare(request)
        proto = channels.protocol(ws.ws_protocol or "")
        assert proto is not None
        if request.path.endswith("/portforward"):
            await self._forward(ws, proto)
            return ws
        await self._send(ws, proto, channels.STDOUT, b"")  # the empty message that says the stream is open
        async for msg in ws:
            if msg.type == WSMsgType.PING:
                self.pings.append(msg.data)
                await ws.pong(msg.data)
                continue
            frame = channels.decode(proto, msg.data)
            if frame.close:
                self.closed_stdin.set()
                await self._send(ws, proto, channels.ERROR, orjson.dumps(channels.exit_status(3, ["sh"])))
                await ws.close()
            elif frame.channel == channels.STDIN and frame.data == b"secret\n":
                await self._send(ws, proto, channels.STDOUT, b"pass")
                await self._send(ws, proto, channels.STDOUT, f"word={PASSWORD}\nok\n".encode())
            elif frame.channel == channels.STDIN:
                await self._send(ws, proto, channels.STDOUT, frame.data)
        return ws

    @staticmethod
    async def _send(ws: web.WebSocketResponse, proto: channels.Protocol, channel: int, data: bytes) -> None:
        message = channels.encode(proto, channels.Frame(channel, data))
        await (ws.send_str(message) if isinstance(message, str) else ws.send_bytes(message))

    async def _forward(self, ws: web.WebSocketResponse, proto: channels.Protocol) -> None:
        for channel in (0, 1):
            await self._send(ws, proto, channel, pf.legacy_port_prefix(8080))
        async for msg in ws:
            frame = channels.decode(proto, msg.data)
            await self._send(ws, proto, 0, frame.data.upper())


@pytest.fixture
async def fake() -> AsyncIterator[dict[str, Any]]:
    up = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up.handle)
    server = TestServer(app)
    await server.start_server()
    conn = Connection(
        ConnectionConfig(name="up", server=str(server.make_url("")).rstrip("/"), auth={"token": "gateway-token"})
    )
    verifier, recorder = Verifier(), Recorder()
    gate = UpgradeGate(StreamsConfig())
    bridge = UpgradeBridge(StreamsConfig())
    masker = Masker(MaskingConfig())
    stages = [AuthenticationStage(verifier), RequestInfoStage(), gate, Decide()]
    pipelines = {
        "full": Pipeline(
            [*stages, SessionStage(recorder), RecorderStage(recorder, masker), MaskingStage(masker)],  # type: ignore[arg-type]
            upgrades=bridge,
        ),
        "unrecorded": Pipeline([*stages, MaskingStage(masker)], upgrades=bridge),
    }
    chosen = {"pipeline": "full"}

    async def handle(request: web.Request) -> web.StreamResponse:
        flow = await flow_of(request, conn)
        return await pipelines[chosen["pipeline"]].run(flow)

    front = web.Application()
    front.router.add_route("*", "/{tail:.*}", handle)
    gw = TestServer(front, handler_cancellation=True)
    await gw.start_server()
    async with aiohttp.ClientSession(
        headers={"Authorization": "Bearer t"}, connector=aiohttp.TCPConnector(force_close=True)
    ) as client:
        yield {
            "up": up,
            "gw": gw,
            "client": client,
            "recorder": recorder,
            "verifier": verifier,
            "gate": gate,
            "chosen": chosen,
        }
    await gw.close()
    await bridge.close()
    await conn.close()
    await server.close()


async def _exec(
    w: dict[str, Any],
    path: str = EXEC,
    protocols: tuple[str, ...] = (channels.V5,),
) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await w["client"].ws_connect(
        w["gw"].make_url(path), protocols=protocols, autoping=False
    )
    return ws


async def test_v5_exec_is_bridged_masked_and_recorded(fake: dict[str, Any]) -> None:
    ws = await _exec(fake)
    assert ws.protocol == channels.V5
    assert (await ws.receive_bytes()) == b"\x01"
    await ws.send_bytes(b"\x00hello\n")
    assert (await ws.receive_bytes()) == b"\x01hello\n"
    await ws.send_bytes(b'\x04{"Width":100,"Height":30}')
    await ws.send_bytes(b"\x00secret\n")
    out = b""
    while b"ok\n" not in out:
        out += (await ws.receive_bytes())[1:]
    assert out == f"password={MARKER}\nok\n".encode()
    await ws.send_bytes(b"\xff\x00")
    error = await ws.receive_bytes()
    assert error[0] == channels.ERROR and channels.exit_code(error[1:]) == 3
    assert (await ws.receive()).type == WSMsgType.CLOSE and ws.close_code == 1000
    assert fake["up"].closed_stdin.is_set()
    rec = fake["recorder"]
    [opened] = rec.of("stream")
    assert opened["kind"] == "exec" and opened["command"] == ["sh"] and opened["protocol"] == channels.V5
    cast = [e for batch in await rec.settled("cast") for e in batch["events"]]
    assert [c for _, c, _ in cast].count("r") == 1 and ["r", "100x30"] in [e[1:] for e in cast]
    recorded = "".join(t for _, c, t in cast if c == "o")
    assert recorded == f"hello\npassword={MARKER}\nok\n" and PASSWORD not in str(rec.events)
    assert "".join(t for _, c, t in cast if c == "i") == "hello\nsecret\n"
    [end] = await rec.settled("end")
    assert end["bytes"] == len(recorded.encode()), "the end counts what the client received"


async def test_base64_framing_crosses_intact(fake: dict[str, Any]) -> None:
    ws = await _exec(fake, protocols=("v9.unknown", channels.BASE64))
    assert ws.protocol == channels.BASE64
    assert await ws.receive_str() == "1"
    await ws.send_str("0" + base64.b64encode(b"hello\n").decode())
    assert await ws.receive_str() == "1" + base64.b64encode(b"hello\n").decode()
    await ws.close()
    cast = [e for batch in await fake["recorder"].settled("cast") for e in batch["events"]]
    assert [e[1:] for e in cast] == [["i", "hello\n"], ["o", "hello\n"]]


async def test_pings_cross_end_to_end(fake: dict[str, Any]) -> None:
    ws = await _exec(fake)
    await ws.receive_bytes()
    await ws.ping(b"are-you-there")
    pong = await ws.receive()
    assert pong.type == WSMsgType.PONG and pong.data == b"are-you-there"
    assert fake["up"].pings == [b"are-you-there"]
    await ws.close()


async def test_a_refused_upgrade_is_relayed_never_tunnelled_and_its_spdy_retry_is_the_same_attempt(
    fake: dict[str, Any],
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _exec(fake, EXEC + "&deny=1")
    assert refused.value.status == 403
    async with fake["client"].post(
        fake["gw"].make_url(EXEC + "&deny=1"), headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade"}
    ) as retry:
        assert retry.status == 403
        assert (await retry.json())["message"] == 'pods "p" is forbidden: no exec'
    assert len(fake["up"].paths) == 1, "the retry must not reach the cluster"
    async with fake["client"].post(
        fake["gw"].make_url(EXEC + "&deny=1"), headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade"}
    ) as again:
        assert again.status == 400 and "kubectl 1.30 or newer" in (await again.json())["message"]


async def test_redirects_are_never_followed(fake: dict[str, Any]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _exec(fake, "/api/v1/namespaces/ns/pods/p/exec/redirect?command=sh")
    assert refused.value.status == 502
    assert len(fake["up"].paths) == 1 and "/elsewhere" not in fake["up"].paths[0]


async def test_only_readable_upgrades_pass_the_gate(fake: dict[str, Any]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as unreadable:
        await _exec(fake, protocols=("v9.channel.example",))
    assert unreadable.value.status == 400
    with pytest.raises(aiohttp.WSServerHandshakeError) as proxied:
        await _exec(fake, "/api/v1/namespaces/ns/services/s/proxy/ws")
    assert proxied.value.status == 400
    async with fake["client"].post(
        fake["gw"].make_url(EXEC), headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade"}
    ) as retry:
        assert "cannot read any WebSocket subprotocol" in (await retry.json())["message"], "same attempt, same answer"
    async with fake["client"].post(
        fake["gw"].make_url(EXEC + "&tty=true"), headers={"Upgrade": "SPDY/3.1", "Connection": "Upgrade"}
    ) as spdy:
        assert spdy.status == 400 and "KUBECTL_REMOTE_COMMAND_WEBSOCKETS" in (await spdy.json())["message"]
    assert fake["up"].paths == [], "nothing the gate refuses reaches the cluster"


async def test_legacy_port_forward_records_ports_and_bytes(fake: dict[str, Any]) -> None:
    ws = await _exec(fake, "/api/v1/namespaces/ns/pods/p/portforward?ports=8080", (channels.V4,))
    assert ws.protocol == channels.V4
    assert await ws.receive_bytes() == b"\x00" + pf.legacy_port_prefix(8080)
    assert await ws.receive_bytes() == b"\x01" + pf.legacy_port_prefix(8080)
    await ws.send_bytes(b"\x00ping")
    assert await ws.receive_bytes() == b"\x00PING"
    await ws.close()
    [conn] = await fake["recorder"].settled("forward")
    assert (conn["port"], conn["bytes_to_pod"], conn["bytes_from_pod"]) == (8080, 4, 4)


async def test_an_expired_token_ends_the_stream_with_a_message(fake: dict[str, Any]) -> None:
    fake["verifier"].expires_at = time.time() + 0.2
    ws = await _exec(fake)
    frames = []
    async for msg in ws:
        frames.append(msg.data)
    error = [f for f in frames if f[:1] == bytes((channels.ERROR,))]
    assert error and b"token expired" in error[0] and b'"Unauthorized"' in error[0]


async def test_a_stream_no_recording_holds_is_never_dialed(fake: dict[str, Any]) -> None:
    fake["chosen"]["pipeline"] = "unrecorded"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await _exec(fake)
    assert refused.value.status == 500
    assert fake["up"].paths == [], "the cluster never saw the exec"


async def test_a_recording_that_fails_mid_stream_stops_it_and_says_why(fake: dict[str, Any]) -> None:
    ws = await _exec(fake)
    assert (await ws.receive_bytes()) == b"\x01"
    fake["recorder"].healthy = False
    await ws.send_bytes(b"\x00hello\n")
    frames = [msg.data async for msg in ws if msg.type == WSMsgType.BINARY]
    assert b"\x01hello\n" not in frames, "nothing more crosses once it cannot be recorded"
    [error] = [f for f in frames if f[:1] == bytes((channels.ERROR,))]
    assert b"cannot record this session any more" in error
    [end] = await fake["recorder"].settled("end")
    assert end["upgrade"]["ended_by"] == "kubegate" and "cannot record" in end["error"]


# -- on the real cluster ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_ns(world: World) -> str:
    name = world.namespace("upgrade")
    world.pod(name, "app", containers=[{"name": "app", "image": "busybox", "ports": [{"containerPort": 8080}]}])
    return name


def _gateway_ssl(world: World) -> ssl.SSLContext:
    assert world.env.gateway is not None and world.env.gateway.ca_file is not None
    return ssl.create_default_context(cafile=str(world.env.gateway.ca_file))


def _as(world: World, sub: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {world.token(sub)}"},
        connector=aiohttp.TCPConnector(ssl=_gateway_ssl(world), force_close=True),
    )


def _only_sessions(world: World, user: str) -> list[dict[str, Any]]:
    world.settle()
    listing = orjson.loads(world.cli("sessions", "list", "--user", f"sandbox:{user}", "--output", "json").stdout)
    return [orjson.loads(world.cli("sessions", "show", s["id"], "--output", "json").stdout) for s in listing["items"]]


@pytest.mark.e2e
def test_the_real_clusters_refusal_is_relayed_and_kubectls_spdy_retry_never_reaches_it(
    world: World, real_ns: str
) -> None:
    """A caller the policy allows but whose role (view) has no pods/exec: kube-apiserver refuses the upgrade,
    kubegate relays its Status, and answers kubectl's SPDY retry itself."""
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    who = {"users": [f"sandbox:{user}"]}
    world.set_policies(
        f"upgrade-{user}",
        [
            {
                "name": f"{user}-discovers",
                "subjects": who,
                "action": "allow",
                "match": {"non_resource_urls": ["/api", "/api/*", "/apis", "/apis/*", "/version"]},
            },
            {
                "name": f"{user}-views",
                "subjects": who,
                "match": {"namespaces": [real_ns]},
                "action": "allow",
                "role": "view",
            },
        ],
    )
    try:
        mark = world.control.audit_mark()
        out = world.kubectl(
            "exec", "app", "-n", real_ns, "--", "env", kubeconfig=world.kubeconfig(user, ("ci",)), check=False
        )
    finally:
        world.clear_policies(f"upgrade-{user}")
    assert out.returncode != 0
    # kube-apiserver checks `get` on pods/exec first for a WebSocket upgrade (then `create` as well)
    assert (
        f'pods "app" is forbidden: User "sandbox:{user}" cannot get resource "pods/exec" in API group "" '
        f'in the namespace "{real_ns}"'
    ) in out.stderr, out.stderr
    assert "HOSTNAME" not in out.stdout
    path = f"/api/v1/namespaces/{real_ns}/pods/app/exec"
    [attempt] = [e for e in world.served(path, mark) if e.uri.startswith(path + "?")]
    assert attempt.code == 403 and attempt.user == GATEWAY_USER
    assert (attempt.impersonated or {}).get("username") == f"sandbox:{user}"
    [session] = _only_sessions(world, user)
    events = session["events"]
    assert len([e for e in events if e["type"] == "refused"]) == 1
    [retry] = [e for e in events if e["type"] == "retry"]
    assert retry["data"]["upgrade"].lower().startswith("spdy")


@pytest.mark.e2e
async def test_pings_cross_the_real_cluster_end_to_end(world: World, real_ns: str) -> None:
    mark = world.control.audit_mark()
    url = f"{world.env.server}/api/v1/namespaces/{real_ns}/pods/app/exec?command=cat&stdin=true&stdout=true"
    async with _as(world, "pinger") as client, client.ws_connect(url, protocols=(channels.V5,), autoping=False) as ws:
        assert ws.protocol == channels.V5
        assert await ws.receive_bytes() == b"\x01"  # the stream is open
        await ws.ping(b"are-you-there")
        pong = await ws.receive()
        assert pong.type == WSMsgType.PONG and pong.data == b"are-you-there"
        await ws.send_bytes(b"\x00after the ping\n")
        assert await ws.receive_bytes() == b"\x01after the ping\n"
        await ws.send_bytes(b"\xff\x00")  # v5: close stdin, so cat ends
        status = await ws.receive_bytes()
        assert status[0] == channels.ERROR and channels.exit_code(status[1:]) == 0
    [opened] = await asyncio.to_thread(world.served, f"/namespaces/{real_ns}/pods/app/exec", mark)
    assert opened.code == 101 and (opened.impersonated or {}).get("username") == "sandbox:pinger"


@pytest.mark.e2e
async def test_nothing_the_gate_refuses_reaches_the_real_cluster(world: World, real_ns: str) -> None:
    mark = world.control.audit_mark()
    base = f"{world.env.server}/api/v1/namespaces/{real_ns}"
    exec_url = f"{base}/pods/app/exec?command=env&stdout=true"
    async with _as(world, "gated") as client:
        with pytest.raises(aiohttp.WSServerHandshakeError) as unreadable:
            await client.ws_connect(exec_url, protocols=("v9.channel.example",))
        assert unreadable.value.status == 400
        with pytest.raises(aiohttp.WSServerHandshakeError) as proxied:
            await client.ws_connect(f"{base}/services/app/proxy/ws", protocols=(channels.V5,))
        assert proxied.value.status == 400
        spdy_headers = {"Upgrade": "SPDY/3.1", "Connection": "Upgrade"}
        async with client.post(exec_url + "&tty=true", headers=spdy_headers) as spdy:
            assert spdy.status == 400 and "KUBECTL_REMOTE_COMMAND_WEBSOCKETS" in (await spdy.json())["message"]
        async with client.get(f"{base}/pods/app") as pod:  # an allowed request, which does reach the cluster
            assert pod.status == 200
    reached = await asyncio.to_thread(world.reached, f"/api/v1/namespaces/{real_ns}/", mark)
    assert [e.uri for e in reached] == [f"/api/v1/namespaces/{real_ns}/pods/app"]


@pytest.mark.e2e
async def test_legacy_port_forward_through_the_real_cluster_records_ports_and_bytes(world: World, real_ns: str) -> None:
    mark = world.control.audit_mark()
    url = f"{world.env.server}/api/v1/namespaces/{real_ns}/pods/app/portforward?ports=8080"
    request = b"GET /legacy HTTP/1.1\r\nHost: pod\r\n\r\n"
    async with _as(world, "legacy") as client, client.ws_connect(url, protocols=(channels.V4,), autoping=False) as ws:
        assert ws.protocol == channels.V4
        assert await ws.receive_bytes() == b"\x00" + pf.legacy_port_prefix(8080)
        assert await ws.receive_bytes() == b"\x01" + pf.legacy_port_prefix(8080)
        await ws.send_bytes(b"\x00" + request)
        answer = b""
        while b'"path":"/legacy"' not in answer:
            frame = await ws.receive_bytes()
            assert frame[0] == 0, frame
            answer += frame[1:]
    assert answer.startswith(b"HTTP/1.1 200 OK") and f'"namespace":"{real_ns}"'.encode() in answer
    [opened] = await asyncio.to_thread(world.served, f"/namespaces/{real_ns}/pods/app/portforward", mark)
    assert opened.code == 101 and (opened.impersonated or {}).get("username") == "sandbox:legacy"
    [session] = await asyncio.to_thread(_only_sessions, world, "legacy")
    [conn] = [e["data"] for e in session["events"] if e["type"] == "forward"]
    assert (conn["port"], conn["bytes_to_pod"], conn["bytes_from_pod"]) == (8080, len(request), len(answer))


def _refused_exec(n: int) -> Flow:
    path, query = f"/api/v1/namespaces/ns/pods/p{n}/exec", "command=sh"
    flow = Flow(
        request=make_mocked_request("GET", f"{path}?{query}", headers={"Upgrade": "websocket"}),
        connection=type("C", (), {"name": "dev"})(),
        method="GET",
        raw_path=path,  # type: ignore[arg-type]
        query_string=query,
        headers=CIMultiDict(),
        body=b"",
        is_upgrade=True,
    )
    flow.identity = Identity(issuer="https://idp", subject="alice", username="idp:alice")
    flow.info = parse_request_info("GET", path, query)
    flow.refusal = Refused(403, f"denied {n} " + "x" * 1000)
    return flow


async def test_refused_upgrade_attempts_are_remembered_up_to_a_bound_and_a_window() -> None:
    now = [0.0]
    gate = UpgradeGate(StreamsConfig(retry_window_seconds=15), clock=lambda: now[0])
    for n in range(MAX_REMEMBERED * 3):
        await gate.on_end(_refused_exec(n))
        assert len(gate._refused) <= MAX_REMEMBERED
    now[0] = 16.0
    await gate.on_end(_refused_exec(-1))
    assert len(gate._refused) == 1  # the rest aged out without waiting for a SPDY request
