"""Upgraded connections: exec, attach and port-forward, bridged WebSocket to WebSocket and recorded.

Two parts, on either side of the decision:

- `UpgradeGate` (a stage, before policy) accepts only WebSocket upgrades of pods/exec, pods/attach
  and pods/portforward offering subprotocols kubegate can read, so nothing passes through unread. A
  SPDY upgrade is refused with a Status that says to use kubectl 1.30+; when it is kubectl's retry of
  a WebSocket attempt that was just refused, it gets that same answer again and is recorded as a
  retry of it: one decision, one denial, one approval request for what the user sees as one command.
- `UpgradeBridge` (called by the pipeline once every stage said yes) dials the cluster first and
  answers the client only after the cluster answered 101 with a subprotocol kubegate speaks; any
  other answer is relayed as a Status and nothing is tunnelled (CVE-2018-1002105), and a redirect is
  never followed (CVE-2020-8559). Then every message is read on its way: exec and attach output is
  masked as it flows and recorded as asciicast, stdin and resizes too; port-forward connections are
  followed in the tunnelled SPDY frames (or legacy channels) and recorded with their ports and bytes.
  Pings and pongs cross end to end, so each side's keep-alive measures the whole path. When the
  caller's token expires the stream ends with a message on the error channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from kubegate.approvals.model import fingerprint
from kubegate.config import StreamsConfig
from kubegate.flow import Flow, Stage
from kubegate.kube import channels
from kubegate.kube import portforward as pf
from kubegate.kube.channels import Frame, Protocol
from kubegate.kube.status import Refused
from kubegate.masking.masker import Masker
from kubegate.masking.text import TextMasker
from kubegate.recording.asciicast import CastBuilder
from kubegate.store.engine import StoreError
from kubegate.upstream.client import unreachable

if TYPE_CHECKING:
    from kubegate.recording.recorder import Recorder

log = logging.getLogger(__name__)

UPGRADE_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
LEGACY_FORWARD_PROTOCOLS = frozenset({channels.V4, channels.V1, channels.BASE64, channels.V4_BASE64})
MAX_MESSAGE = 16 * 1024 * 1024
MAX_REFUSAL_BODY = 64 * 1024
RETRY = "retry_of"
MAX_REMEMBERED = 1024
"""Refused WebSocket attempts kept for kubectl's SPDY retry; callers make them, so they are capped."""
SPDY_ADVICE = (
    "kubegate records exec, attach, cp and port-forward only over WebSocket, and this client asked "
    "for SPDY. Use kubectl 1.30 or newer (1.31 or newer for port-forward), and unset "
    "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false and KUBECTL_PORT_FORWARD_WEBSOCKETS=false."
)


def offered_protocols(flow: Flow) -> list[str]:
    return [
        p.strip() for v in flow.request.headers.getall("Sec-WebSocket-Protocol", []) for p in v.split(",") if p.strip()
    ]


def readable(subresource: str, protocol: str) -> bool:
    """Whether kubegate can read (and so record) this subprotocol of this subresource."""
    if subresource == "portforward":
        return protocol == pf.TUNNEL_PROTOCOL or protocol in LEGACY_FORWARD_PROTOCOLS
    return channels.protocol(protocol) is not None


@dataclass(frozen=True, slots=True)
class Plan:
    """What the gate accepted: the subresource and the subprotocols to offer upstream, in order."""

    subresource: str
    protocols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Refusal:
    at: float
    flow_id: str
    code: int
    message: str
    reason: str | None
    details: dict[str, Any] | None


class UpgradeGate(Stage):
    """Admits the upgrades the bridge can read; answers kubectl's SPDY retry of a refused attempt."""

    name = "upgrade"

    def __init__(self, config: StreamsConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or StreamsConfig()
        self.clock = clock
        self._refused: dict[str, _Refusal] = {}

    def _fingerprint(self, flow: Flow) -> str | None:
        if flow.identity is None or flow.info is None:
            return None
        return fingerprint(
            flow.identity.username, flow.connection.name, flow.info, flow.method, flow.raw_path, flow.query_string, ""
        )

    async def on_request(self, flow: Flow) -> None:
        if not flow.is_upgrade:
            return
        info = flow.info
        upgrade = flow.request.headers.get("Upgrade", "").strip().lower()
        if upgrade.startswith("spdy/"):
            self._answer_retry(flow)
            raise Refused(400, SPDY_ADVICE, reason="BadRequest")
        if upgrade != "websocket":
            raise Refused(
                400,
                f"kubegate does not bridge {upgrade or 'this'} upgrades; only WebSocket exec, attach and port-forward",
                reason="BadRequest",
            )
        if info is None or info.resource != "pods" or info.subresource not in UPGRADE_SUBRESOURCES:
            raise Refused(
                400,
                "kubegate bridges WebSocket upgrades only for pods/exec, pods/attach and "
                "pods/portforward, so that it can record them",
                reason="BadRequest",
            )
        protocols = tuple(p for p in offered_protocols(flow) if readable(info.subresource, p))
        if not protocols:
            raise Refused(
                400,
                f"kubegate cannot read any WebSocket subprotocol this client offered for "
                f"{info.subresource} ({', '.join(offered_protocols(flow)) or 'none'}), so it will not "
                "pass the stream through unrecorded; use kubectl 1.30 or newer",
                reason="BadRequest",
            )
        flow.extras[self.name] = Plan(info.subresource, protocols)

    def _forget_old(self, now: float) -> None:
        """Attempts are remembered in the order they were refused: the oldest go first, by age or by number."""
        window = self.config.retry_window_seconds
        while self._refused and (
            len(self._refused) > MAX_REMEMBERED or now - next(iter(self._refused.values())).at > window
        ):
            del self._refused[next(iter(self._refused))]

    def _answer_retry(self, flow: Flow) -> None:
        fp = self._fingerprint(flow)
        now = self.clock()
        self._forget_old(now)
        earlier = self._refused.pop(fp, None) if fp else None
        if earlier is not None:
            flow.extras[RETRY] = earlier.flow_id
            raise Refused(earlier.code, earlier.message, reason=earlier.reason, details=earlier.details)

    async def on_end(self, flow: Flow) -> None:
        """Remember a WebSocket attempt that did not open: kubectl retries it over SPDY at once."""
        if not flow.is_upgrade or RETRY in flow.extras or flow.response_status == 101:
            return
        if flow.request.headers.get("Upgrade", "").strip().lower() != "websocket":
            return
        fp = self._fingerprint(flow)
        refusal = flow.refusal
        if fp is None or not isinstance(refusal, Refused):
            return
        now = self.clock()
        self._refused.pop(fp, None)  # re-inserted last, so the dict stays in order of refusal
        self._refused[fp] = _Refusal(now, flow.id, refusal.code, refusal.message, refusal.reason, refusal.details)
        self._forget_old(now)


# -- the bridge -------------------------------------------------------------------------------------


class UpstreamRefused(aiohttp.ClientError):
    """The cluster answered an upgrade with something other than 101."""

    def __init__(self, status: int, body: bytes, location: str) -> None:
        super().__init__(f"upgrade answered {status}")
        self.status = status
        self.body = body
        self.location = location


async def _only_switching_protocols(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Client middleware: an upgrade answered with anything but 101 ends here, before aiohttp could
    follow a redirect or hand over a connection."""
    response = await handler(request)
    if response.status != 101:
        try:
            body = await asyncio.wait_for(response.content.read(MAX_REFUSAL_BODY), 10)
        except (TimeoutError, aiohttp.ClientError):
            body = b""
        location = response.headers.get("Location", "")
        response.close()
        raise UpstreamRefused(response.status, body, location)
    return response


def _relayed_refusal(exc: UpstreamRefused, connection: str) -> Refused:
    if 300 <= exc.status < 400:
        return Refused(
            502,
            f"the API server of connection {connection} answered the upgrade with a redirect "
            f"({exc.status}{' to ' + exc.location if exc.location else ''}); kubegate never follows "
            "redirects on upgraded connections",
            reason="BadGateway",
        )
    try:
        status = orjson.loads(exc.body)
    except orjson.JSONDecodeError:
        status = None
    code = exc.status if 400 <= exc.status < 600 else 502
    if isinstance(status, dict) and status.get("kind") == "Status":
        return Refused(
            code,
            str(status.get("message", "")),
            reason=status.get("reason"),
            details=status.get("details"),
        )
    text = exc.body.decode(errors="replace").strip()[:500]
    return Refused(
        code,
        f"the API server of connection {connection} refused the upgrade ({exc.status})" + (f": {text}" if text else ""),
    )


Messages = list[bytes | str]


class Session:
    """What is read from one upgraded connection. Subclasses say which messages go on, changed or not."""

    kind = "stream"

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.forwarded: list[dict[str, Any]] = []
        self.cast: CastBuilder | None = None

    def from_client(self, data: bytes | str) -> Messages:
        return [data]

    def from_upstream(self, data: bytes | str) -> Messages:
        return [data]

    def finish(self) -> Messages:
        return []

    def expire(self, message: str) -> Messages:
        return self.finish()

    def summary(self) -> dict[str, Any]:
        return {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out}


class ExecSession(Session):
    """exec and attach: stdout and stderr masked as they flow, everything recorded as asciicast."""

    def __init__(
        self, kind: str, proto: Protocol, maskers: Callable[[], TextMasker | None], clock: Callable[[], float]
    ) -> None:
        super().__init__()
        self.kind = kind
        self.proto = proto
        self.cast = CastBuilder(clock)
        self._out = {channels.STDOUT: maskers(), channels.STDERR: maskers()}
        self._in = maskers()
        self.exit_code: int | None = None
        self.status = ""

    def from_client(self, data: bytes | str) -> Messages:
        frame = channels.decode(self.proto, data)
        assert self.cast is not None
        if frame.channel == channels.STDIN and not frame.close:
            self.bytes_in += len(frame.data)
            self.cast.write("i", self._in.feed(frame.data) if self._in else frame.data)
        elif frame.channel == channels.RESIZE and not frame.close:
            size = channels.resize(frame.data)
            if size is not None:
                self.cast.resize(*size)
        elif frame.channel == channels.STDIN and frame.close and self._in is not None:
            self.cast.write("i", self._in.flush())
        return [data]

    def from_upstream(self, data: bytes | str) -> Messages:
        frame = channels.decode(self.proto, data)
        if frame.close or frame.channel not in (channels.STDOUT, channels.STDERR, channels.ERROR):
            return [data]
        if frame.channel == channels.ERROR:
            self.exit_code = channels.exit_code(frame.data)
            self.status = channels.status_message(frame.data)
            return [*self.finish(), data]
        self.bytes_out += len(frame.data)
        if not frame.data:
            return [data]
        return self._output(frame.channel, frame.data)

    def _output(self, channel: int, data: bytes) -> Messages:
        masker = self._out[channel]
        out = masker.feed(data) if masker is not None else data
        if not out:
            return []
        assert self.cast is not None
        self.cast.write("o", out, stream=str(channel))
        return [channels.encode(self.proto, Frame(channel, out))]

    def finish(self) -> Messages:
        messages: Messages = []
        for channel, masker in self._out.items():
            if masker is not None:
                tail = masker.flush()
                if tail:
                    assert self.cast is not None
                    self.cast.write("o", tail, stream=str(channel))
                    messages.append(channels.encode(self.proto, Frame(channel, tail)))
        return messages

    def expire(self, message: str) -> Messages:
        status = channels.failure_status(message, reason="Unauthorized", code=401)
        return [*self.finish(), channels.encode(self.proto, Frame(channels.ERROR, orjson.dumps(status)))]

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "exit_code": self.exit_code, "status": self.status}


class TunnelSession(Session):
    """Port-forward through the SPDY tunnel: frames followed both ways, connections recorded as they end."""

    kind = "portforward"

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.started = clock()
        self._up, self._down = pf.Parser(), pf.Parser()
        self._seen = pf.TunnelObserver()
        self.connections = 0

    def _done(self, finished: list[pf.Forwarded]) -> None:
        for conn in finished:
            self.connections += 1
            record = conn.as_dict()
            record["opened"] = round(conn.opened - self.started, 6)
            record["closed"] = round((conn.closed or conn.opened) - self.started, 6)
            self.forwarded.append(record)

    def from_client(self, data: bytes | str) -> Messages:
        if isinstance(data, str):
            raise pf.SpdyError("the SPDY tunnel carries binary messages only")
        self.bytes_in += len(data)
        self._done(self._seen.from_client(self._up.feed(data), self.clock()))
        return [data]

    def from_upstream(self, data: bytes | str) -> Messages:
        if isinstance(data, str):
            raise pf.SpdyError("the SPDY tunnel carries binary messages only")
        self.bytes_out += len(data)
        self._done(self._seen.from_pod(self._down.feed(data), self.clock()))
        return [data]

    def finish(self) -> Messages:
        self._done(self._seen.close(self.clock()))
        return []

    def expire(self, message: str) -> Messages:
        messages: Messages = []
        if self._down.at_boundary:
            messages = [pf.Writer.data(sid, message.encode(), fin=True) for sid in self._seen.open_error_streams()]
        return [*messages, *self.finish()]

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "connections": self.connections}


class LegacyForwardSession(Session):
    """Port-forward over the channel protocol: one connection per port, channel 2i data, 2i+1 errors."""

    kind = "portforward"

    def __init__(self, proto: Protocol, ports: list[int], clock: Callable[[], float]) -> None:
        super().__init__()
        self.proto = proto
        self.clock = clock
        self.started = clock()
        self.ports = ports
        self._conns = [pf.Forwarded(str(i), port, 0.0) for i, port in enumerate(ports)]
        self._announced: set[int] = set()

    def _conn(self, channel: int) -> pf.Forwarded | None:
        return self._conns[channel // 2] if channel // 2 < len(self._conns) else None

    def from_client(self, data: bytes | str) -> Messages:
        frame = channels.decode(self.proto, data)
        conn = self._conn(frame.channel)
        if conn is not None and frame.channel % 2 == 0:
            conn.bytes_to_pod += len(frame.data)
            self.bytes_in += len(frame.data)
        return [data]

    def from_upstream(self, data: bytes | str) -> Messages:
        frame = channels.decode(self.proto, data)
        conn = self._conn(frame.channel)
        payload = frame.data
        if conn is not None and frame.channel not in self._announced:
            self._announced.add(frame.channel)
            port = pf.legacy_port(payload)
            if port is not None:
                conn.port = port
            payload = payload[2:]
        if conn is not None and frame.channel % 2 == 0:
            conn.bytes_from_pod += len(payload)
            self.bytes_out += len(payload)
        elif conn is not None and len(conn.error) < pf.MAX_ERROR_TEXT:
            conn.error += payload.decode(errors="replace")[: pf.MAX_ERROR_TEXT - len(conn.error)]
        return [data]

    def finish(self) -> Messages:
        now = round(self.clock() - self.started, 6)
        for conn in self._conns:
            if conn.closed is None:
                conn.closed = now
                self.forwarded.append(conn.as_dict())
        return []

    def expire(self, message: str) -> Messages:
        messages = [channels.encode(self.proto, Frame(2 * i + 1, message.encode())) for i in range(len(self._conns))]
        return [*messages, *self.finish()]

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "connections": len(self._conns)}


def _ports(flow: Flow) -> list[int]:
    assert flow.info is not None
    return [int(p) for k, v in flow.info.query if k == "ports" for p in v.split(",") if p.strip().isdigit()]


@dataclass
class _Pumps:
    """The state one bridged connection shares between its tasks."""

    flow: Flow
    client: web.WebSocketResponse
    upstream: aiohttp.ClientWebSocketResponse
    session: Session
    session_id: str | None
    ended_by: str = ""


class UpgradeBridge:
    """Bridges the upgrades the gate admitted, once the pipeline's stages all let them through."""

    def __init__(
        self,
        recorder: Recorder | None,
        masker: Masker,
        config: StreamsConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.recorder = recorder
        self.masker = masker
        self.config = config or StreamsConfig()
        self.clock = clock
        self.wall = wall
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self.open = 0

    def _client_session(self, flow: Flow) -> aiohttp.ClientSession:
        """A client sharing the connection's pool and TLS, whose upgrades stop at any non-101 answer."""
        conn = flow.connection
        session = self._sessions.get(conn.name)
        if session is None or session.closed or session.connector is not conn.session.connector:
            session = self._sessions[conn.name] = aiohttp.ClientSession(
                connector=conn.session.connector,
                connector_owner=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                middlewares=(_only_switching_protocols,),
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        return session

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def run(self, flow: Flow, opened: Callable[[Flow], Awaitable[None]]) -> web.StreamResponse:
        plan: Plan | None = flow.extras.get(UpgradeGate.name)
        if plan is None:
            raise Refused(
                500,
                "kubegate reached the upgrade bridge without the upgrade gate's admission. This is "
                "a kubegate bug; nothing was forwarded",
                reason="InternalError",
            )
        upstream = await self._dial(flow, plan)
        try:
            negotiated = upstream.protocol or ""
            if negotiated not in plan.protocols:
                raise Refused(
                    502,
                    f"the API server of connection {flow.connection.name} chose WebSocket subprotocol "
                    f"{negotiated or '(none)'}, which kubegate did not offer; nothing was forwarded",
                    reason="BadGateway",
                )
            session = self._session(flow, plan, negotiated)
            session_id = await self._record_open(flow, plan, negotiated, session)
            flow.response_status = 101
            flow.response_headers = CIMultiDict({"Sec-WebSocket-Protocol": negotiated})
            await opened(flow)
            client = web.WebSocketResponse(
                protocols=(negotiated,), autoping=False, max_msg_size=MAX_MESSAGE, compress=False
            )
            await client.prepare(flow.request)
        except BaseException:
            await upstream.close()
            raise
        pumps = _Pumps(flow, client, upstream, session, session_id)
        self.open += 1
        try:
            await self._bridge(pumps)
        finally:
            self.open -= 1
            await self._flush(pumps, final=True)
            flow.extras["upgrade_summary"] = {
                "protocol": negotiated,
                "kind": session.kind,
                "ended_by": pumps.ended_by,
                **session.summary(),
            }
        return client

    async def _dial(self, flow: Flow, plan: Plan) -> aiohttp.ClientWebSocketResponse:
        conn = flow.connection
        headers = CIMultiDict((k, v) for k, v in flow.headers.items() if not k.lower().startswith("sec-websocket-"))
        for name, value in await conn.client.identity_headers(flow.identity):
            headers.add(name, value)
        url = conn.client.url(flow.raw_path, flow.query_string)
        try:
            return await self._client_session(flow).ws_connect(
                url,
                protocols=plan.protocols,
                headers=headers,
                autoping=False,
                autoclose=True,
                max_msg_size=MAX_MESSAGE,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
            )
        except UpstreamRefused as exc:
            raise _relayed_refusal(exc, conn.name) from exc
        except aiohttp.WSServerHandshakeError as exc:
            raise Refused(
                502,
                f"the API server of connection {conn.name} answered the upgrade incorrectly "
                f"({exc.message}); nothing was forwarded",
                reason="BadGateway",
            ) from exc
        except TimeoutError as exc:
            raise Refused(
                504, f"the API server of connection {conn.name} did not answer the upgrade in time", reason="Timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise unreachable(conn.name, exc) from exc

    def _session(self, flow: Flow, plan: Plan, negotiated: str) -> Session:
        if plan.subresource == "portforward":
            if negotiated == pf.TUNNEL_PROTOCOL:
                return TunnelSession(self.clock)
            proto = channels.protocol(negotiated)
            assert proto is not None
            return LegacyForwardSession(proto, _ports(flow), self.clock)
        proto = channels.protocol(negotiated)
        assert proto is not None
        masks = tuple(getattr(flow.decision, "masks", ()) or ())
        text = self.masker.plan(masks).text if masks else None

        def maskers() -> TextMasker | None:
            return text.stream() if text else None

        return ExecSession(plan.subresource, proto, maskers, self.clock)

    async def _bridge(self, p: _Pumps) -> None:
        tasks = {
            asyncio.ensure_future(self._pump(p, from_client=True)),
            asyncio.ensure_future(self._pump(p, from_client=False)),
            asyncio.ensure_future(self._flusher(p)),
        }
        expiry = self._expiry(p.flow)
        if expiry is not None:
            tasks.add(asyncio.ensure_future(self._expire_at(p, expiry)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            tail = p.session.finish()
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError):
                await self._send(p.client, tail)
            await self._close(p)

    async def _pump(self, p: _Pumps, from_client: bool) -> None:
        src: Any = p.client if from_client else p.upstream
        dst: Any = p.upstream if from_client else p.client
        handle = p.session.from_client if from_client else p.session.from_upstream
        try:
            async for msg in src:
                if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    await self._send(dst, handle(msg.data))
                    await self._flush(p)
                elif msg.type == WSMsgType.PING:
                    await dst.ping(msg.data)
                elif msg.type == WSMsgType.PONG:
                    await dst.pong(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        except (channels.ProtocolError, pf.SpdyError) as exc:
            p.flow.error = f"{'client' if from_client else 'API server'} broke the stream protocol: {exc}"
            log.warning("flow %s: %s", p.flow.id, p.flow.error)
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            p.flow.error = p.flow.error or f"connection lost: {exc.__class__.__name__}"
        if not p.ended_by:
            p.ended_by = "client" if from_client else "upstream"

    @staticmethod
    async def _send(ws: Any, messages: Messages) -> None:
        for message in messages:
            if ws.closed:
                return
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)

    async def _close(self, p: _Pumps) -> None:
        code = p.upstream.close_code if p.ended_by == "upstream" else p.client.close_code
        code = code if code and 1000 <= code < 5000 and code not in (1005, 1006, 1015) else 1000
        with contextlib.suppress(Exception):
            await p.client.close(code=code)
        with contextlib.suppress(Exception):
            await p.upstream.close(code=code if p.ended_by == "client" else 1000)

    def _expiry(self, flow: Flow) -> float | None:
        expires = flow.identity.expires_at if flow.identity is not None else 0.0
        if not self.config.close_on_token_expiry or not expires:
            return None
        return max(0.0, expires - self.wall())

    async def _expire_at(self, p: _Pumps, delay: float) -> None:
        await asyncio.sleep(delay)
        message = (
            f"kubegate closed this {p.session.kind} session: your token expired at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.wall()))}; get a new token and run "
            "the command again"
        )
        await self._send(p.client, p.session.expire(message))
        p.flow.error = "token expired"
        p.ended_by = "token expiry"

    async def _flusher(self, p: _Pumps) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._flush(p, force=True)

    async def _flush(self, p: _Pumps, final: bool = False, force: bool = False) -> None:
        """Hand finished port-forward connections and batched asciicast events to the recorder."""
        session = p.session
        cast = session.cast
        events = cast.take(final=final) if cast is not None and (final or force or cast.ready()) else []
        forwarded, session.forwarded = session.forwarded, []
        if p.session_id is None:
            return
        if events:
            await self._record(p, "cast", {"flow": p.flow.id, "events": events})
        for conn in forwarded:
            await self._record(p, "forward", {"flow": p.flow.id, **conn})

    async def _record(self, p: _Pumps, type: str, data: dict[str, Any]) -> None:
        recorder = self.recorder
        if recorder is None or p.session_id is None:
            return
        if not recorder.healthy and not p.client.closed:
            p.flow.error = "the store failed, so the stream was stopped"
            await self._send(
                p.client,
                p.session.expire(
                    "kubegate cannot record this session any more (its store "
                    "failed), so it was stopped; run the command again or "
                    "contact the kubegate operator"
                ),
            )
            await p.client.close()
        try:
            await recorder.record_event(p.session_id, type, data, durable=False)
        except StoreError as exc:
            recorder.lost_events += 1
            log.error("cannot record a %s event of flow %s: %s", type, p.flow.id, exc)

    async def _record_open(self, flow: Flow, plan: Plan, negotiated: str, session: Session) -> str | None:
        if self.recorder is None:
            return None
        info = flow.info
        assert info is not None
        session_id: str = self.recorder.session_for(flow)
        data: dict[str, Any] = {
            "flow": flow.id,
            "kind": session.kind,
            "protocol": negotiated,
            "namespace": info.namespace,
            "pod": info.name,
            "container": info.container,
            "command": list(info.command),
            "tty": any(k == "tty" and v.lower() not in ("0", "false") for k, v in info.query),
            "masks": list(getattr(flow.decision, "masks", ()) or ()),
        }
        if plan.subresource == "portforward":
            data["ports"] = _ports(flow)
        try:
            await self.recorder.record_event(session_id, "stream", data, durable=True)
        except StoreError as exc:
            raise Refused(
                503,
                f"kubegate cannot record this stream, so it was not opened: {exc}; try again or "
                "contact the kubegate operator",
                reason="ServiceUnavailable",
            ) from exc
        return session_id
