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
  never followed (CVE-2020-8559). It dials only a stream a recording holds. Then it
  decodes every message once (kube/streams.py) and passes it through the pipeline's stages, which
  mask (masking/streams.py) and record (recording/streams.py) it; the bridge itself is only
  transport. Pings and pongs cross end to end, so each side's keep-alive measures the whole path.
  When the caller's token expires, or a stage stops the stream, the client is told why in its
  protocol's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from kubegate.approvals.model import fingerprint
from kubegate.flow import Flow, Message, Stage, Upgrade
from kubegate.kube import channels
from kubegate.kube import portforward as pf
from kubegate.kube.status import Refused
from kubegate.kube.streams import ChannelCodec, LegacyForwardCodec, StreamCodec, TunnelCodec, requested_ports
from kubegate.proxy.config import StreamsConfig
from kubegate.upstream.client import unreachable

log = logging.getLogger(__name__)

UPGRADE_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
LEGACY_FORWARD_PROTOCOLS = frozenset({channels.V4, channels.V1, channels.BASE64, channels.V4_BASE64})
MAX_MESSAGE = 16 * 1024 * 1024
MAX_REFUSAL_BODY = 64 * 1024
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
        flow.upgrade = Upgrade(info.subresource, protocols)

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
            flow.retry_of = earlier.flow_id
            raise Refused(earlier.code, earlier.message, reason=earlier.reason, details=earlier.details)

    async def on_end(self, flow: Flow) -> None:
        """Remember a WebSocket attempt that did not open: kubectl retries it over SPDY at once."""
        if not flow.is_upgrade or flow.retry_of or flow.response_status == 101:
            return
        if flow.request.headers.get("Upgrade", "").strip().lower() != "websocket":
            return
        fp = self._fingerprint(flow)
        refusal = flow.refusal
        if fp is None or refusal is None:
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


class StreamHooks(Protocol):
    """The pipeline, as the bridge sees it: every message goes through the stages."""

    async def opened(self, flow: Flow) -> None: ...

    async def message(self, flow: Flow, message: Message) -> list[Message]: ...

    async def stream_end(self, flow: Flow) -> list[Message]: ...


def _codec(flow: Flow, upgrade: Upgrade) -> StreamCodec:
    if upgrade.protocol == pf.TUNNEL_PROTOCOL:
        return TunnelCodec()
    proto = channels.protocol(upgrade.protocol)
    assert proto is not None
    if upgrade.subresource == "portforward":
        assert flow.info is not None
        return LegacyForwardCodec(proto, len(requested_ports(flow.info.query)))
    return ChannelCodec(proto)


@dataclass
class _Pumps:
    """The state one bridged connection shares between its tasks."""

    flow: Flow
    hooks: StreamHooks
    codec: StreamCodec
    client: web.WebSocketResponse
    upstream: aiohttp.ClientWebSocketResponse
    ending: bool = False

    @property
    def upgrade(self) -> Upgrade:
        assert self.flow.upgrade is not None
        return self.flow.upgrade


class UpgradeBridge:
    """Carries the upgrades the gate admitted once every stage let them through: dial, 101 only,
    decode, pumps through the stages, keep-alive, close."""

    def __init__(
        self,
        config: StreamsConfig | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or StreamsConfig()
        self.wall = wall
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def _client_session(self, flow: Flow) -> aiohttp.ClientSession:
        """A client sharing the connection's pool and TLS (a new one when the pool changed, as it does when
        the cluster's CA rotates), whose upgrades stop at any non-101 answer."""
        conn = flow.connection
        session = self._sessions.get(conn.name)
        if session is None or session.closed or session.connector is not conn.session.connector:
            if session is not None:
                await session.close()  # it owns no connector: streams still open on the old pool go on
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

    async def run(self, flow: Flow, hooks: StreamHooks) -> web.StreamResponse:
        upgrade = flow.upgrade
        if upgrade is None:
            raise Refused(
                500,
                "kubegate reached the upgrade bridge without the upgrade gate's admission. This is "
                "a kubegate bug; nothing was forwarded",
                reason="InternalError",
            )
        if not upgrade.recorded:
            raise Refused(
                500,
                "kubegate has no recording for this stream and never opens one unrecorded; nothing "
                "was forwarded. This is a kubegate configuration bug: tell the kubegate operator",
                reason="InternalError",
            )
        upstream = await self._dial(flow, upgrade)
        try:
            negotiated = upstream.protocol or ""
            if negotiated not in upgrade.offered:
                raise Refused(
                    502,
                    f"the API server of connection {flow.connection.name} chose WebSocket subprotocol "
                    f"{negotiated or '(none)'}, which kubegate did not offer; nothing was forwarded",
                    reason="BadGateway",
                )
            upgrade.protocol = negotiated
            flow.response_status = 101
            flow.response_headers = CIMultiDict({"Sec-WebSocket-Protocol": negotiated})
            await hooks.opened(flow)
            client = web.WebSocketResponse(
                protocols=(negotiated,), autoping=False, max_msg_size=MAX_MESSAGE, compress=False
            )
            await client.prepare(flow.request)
        except BaseException:
            await upstream.close()
            raise
        await self._bridge(_Pumps(flow, hooks, _codec(flow, upgrade), client, upstream))
        return client

    async def _dial(self, flow: Flow, upgrade: Upgrade) -> aiohttp.ClientWebSocketResponse:
        conn = flow.connection
        headers = CIMultiDict((k, v) for k, v in flow.headers.items() if not k.lower().startswith("sec-websocket-"))
        for name, value in await conn.client.identity_headers(flow.identity):
            headers.add(name, value)
        url = conn.client.url(flow.raw_path, flow.query_string)
        try:
            return await (await self._client_session(flow)).ws_connect(
                url,
                protocols=upgrade.offered,
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

    async def _bridge(self, p: _Pumps) -> None:
        tasks = {
            asyncio.ensure_future(self._pump(p, from_client=True)),
            asyncio.ensure_future(self._pump(p, from_client=False)),
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
            with contextlib.suppress(ConnectionResetError, aiohttp.ClientError, Refused):
                await self._end(p)
            await self._close(p)

    async def _pump(self, p: _Pumps, from_client: bool) -> None:
        src: Any = p.client if from_client else p.upstream
        dst: Any = p.upstream if from_client else p.client
        try:
            async for msg in src:
                if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    for out in await p.hooks.message(p.flow, p.codec.decode(msg.data, from_client)):
                        await self._deliver(p, out)
                elif msg.type == WSMsgType.PING:
                    await dst.ping(msg.data)
                elif msg.type == WSMsgType.PONG:
                    await dst.pong(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        except (channels.ProtocolError, pf.SpdyError) as exc:
            p.flow.error = f"{'client' if from_client else 'API server'} broke the stream protocol: {exc}"
            log.warning("flow %s: %s", p.flow.id, p.flow.error)
        except Refused as refusal:  # a stage stopped the stream (a recording that failed)
            await self._farewell(p, refusal.message, "kubegate")
        except (ConnectionResetError, aiohttp.ClientError) as exc:
            p.flow.error = p.flow.error or f"connection lost: {exc.__class__.__name__}"
        if not p.upgrade.ended_by:
            p.upgrade.ended_by = "client" if from_client else "upstream"

    async def _end(self, p: _Pumps) -> None:
        """Once: what the stages still hold goes to its side before the stream closes."""
        if p.ending:
            return
        p.ending = True
        for out in await p.hooks.stream_end(p.flow):
            await self._deliver(p, out)

    async def _deliver(self, p: _Pumps, message: Message) -> None:
        if not message.from_client:
            p.flow.bytes_sent += len(message.data)
        await self._send(p.upstream if message.from_client else p.client, [p.codec.encode(message)])

    async def _farewell(self, p: _Pumps, text: str, ended_by: str) -> None:
        """kubegate ends the stream itself: the stages' tails first, then the reason, in the protocol's words."""
        p.flow.error = text
        p.upgrade.ended_by = ended_by
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientError, Refused):
            await self._end(p)
            await self._send(p.client, p.codec.farewell(text))

    @staticmethod
    async def _send(ws: Any, messages: list[bytes | str]) -> None:
        for message in messages:
            if ws.closed:
                return
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)

    async def _close(self, p: _Pumps) -> None:
        code = p.upstream.close_code if p.upgrade.ended_by == "upstream" else p.client.close_code
        code = code if code and 1000 <= code < 5000 and code not in (1005, 1006, 1015) else 1000
        with contextlib.suppress(Exception):
            await p.client.close(code=code)
        with contextlib.suppress(Exception):
            await p.upstream.close(code=code if p.upgrade.ended_by == "client" else 1000)

    def _expiry(self, flow: Flow) -> float | None:
        expires = flow.identity.expires_at if flow.identity is not None else 0.0
        if not self.config.close_on_token_expiry or not expires:
            return None
        return max(0.0, expires - self.wall())

    async def _expire_at(self, p: _Pumps, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._farewell(
            p,
            f"kubegate closed this {p.upgrade.subresource} session: your token expired at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(self.wall()))}; get a new token and run "
            "the command again",
            "token expiry",
        )
        p.flow.error = "token expired"
