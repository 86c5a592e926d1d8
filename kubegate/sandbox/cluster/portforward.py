"""pods/portforward over WebSocket: the SPDY/3.1 tunnel kubectl 1.31+ uses, and the legacy channel protocol.

Every port a container declares serves a small HTTP echo server (any other port is refused as a
real pod would, with a message on the connection's error stream). The tunnel is the kubelet's side
of SPDY: each client stream gets a SYN_REPLY, a data and an error stream with the same `requestid`
make one connection, pings are answered, and a finished connection half-closes both streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from kubegate.kube import channels
from kubegate.kube import portforward as pf

from .errors import bad_request
from .exec import Channels
from .shell import Pipe

Send = Callable[[bytes], Awaitable[None]]
LEGACY_PROTOCOLS = (channels.V4, channels.V1, channels.BASE64, channels.V4_BASE64)


def declared_ports(pod: dict[str, Any]) -> set[int]:
    return {
        int(p["containerPort"])
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
        if "containerPort" in p
    }


async def http_echo(pod: dict[str, Any], port: int, read: Pipe, send: Send) -> None:
    """Answer one HTTP/1.1 request with JSON saying who answered and what was asked; anything that is
    not HTTP is echoed back as it comes."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await read.read()
        if not chunk:
            if buf:
                await send(buf)
            return
        buf += chunk
        if len(buf) > 64 * 1024 or (b"\n" in buf and b" HTTP/1." not in buf.split(b"\n", 1)[0]):
            await send(buf)
            while chunk := await read.read():
                await send(chunk)
            return
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    method, path = ([*lines[0].split(" "), "", ""])[:2]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = await read.read()
        if not chunk:
            break
        body += chunk
    meta = pod["metadata"]
    answer = orjson.dumps(
        {
            "pod": meta["name"],
            "namespace": meta.get("namespace", ""),
            "port": port,
            "method": method,
            "path": path,
            "body": body[:length].decode(errors="replace"),
        }
    )
    await send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(answer)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + answer
    )


def refused(pod: dict[str, Any], port: int) -> bytes:
    meta = pod["metadata"]
    return (
        f"error forwarding port {port} to pod {meta.get('uid', '')}, uid : failed to connect to "
        f'localhost:{port} inside namespace "{meta.get("namespace", "")}": connection refused'
    ).encode()


async def serve_portforward(request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise bad_request("Upgrade request required")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if pf.TUNNEL_PROTOCOL in offered:
        ws = web.WebSocketResponse(
            protocols=(pf.TUNNEL_PROTOCOL,), autoping=True, compress=False, max_msg_size=16 * 1024 * 1024
        )
        await ws.prepare(request)
        await SpdyServer(ws, pod).run()
        return ws
    ports = [int(p) for v in request.query.getall("ports", []) for p in v.split(",") if p.strip().isdigit()]
    if not ports:
        raise bad_request('query parameter "port" is required')
    ws = web.WebSocketResponse(protocols=LEGACY_PROTOCOLS, autoping=True, compress=False)
    await ws.prepare(request)
    proto = channels.protocol(ws.ws_protocol or channels.V1)
    assert proto is not None
    await _legacy(Channels(ws, proto), pod, ports)
    return ws


async def _legacy(ch: Channels, pod: dict[str, Any], ports: list[int]) -> None:
    open_ports = declared_ports(pod)
    inputs = [Pipe() for _ in ports]
    tasks: list[asyncio.Task[None]] = []
    for i, port in enumerate(ports):
        await ch.send(2 * i, pf.legacy_port_prefix(port))
        await ch.send(2 * i + 1, pf.legacy_port_prefix(port))
        if port not in open_ports:
            await ch.send(2 * i + 1, refused(pod, port))
            continue

        def sender(channel: int) -> Send:
            return lambda data: ch.send(channel, data)

        tasks.append(asyncio.ensure_future(http_echo(pod, port, inputs[i], sender(2 * i))))
    try:
        async for msg in ch.ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            with contextlib.suppress(channels.ProtocolError):
                frame = channels.decode(ch.proto, msg.data)
                if frame.channel % 2 == 0 and frame.channel // 2 < len(ports):
                    await inputs[frame.channel // 2].write(frame.data)
    finally:
        for task in tasks:
            task.cancel()


class SpdyServer:
    """The kubelet's end of a tunnelled SPDY port-forward connection."""

    def __init__(self, ws: web.WebSocketResponse, pod: dict[str, Any]) -> None:
        self.ws = ws
        self.pod = pod
        self.ports = declared_ports(pod)
        self.parser = pf.Parser()
        self.writer = pf.Writer()
        self.pairs: dict[str, dict[str, int]] = {}
        self.inputs: dict[int, Pipe] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.port_of: dict[int, int] = {}

    async def send(self, data: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self.ws.send_bytes(data)

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                try:
                    frames = self.parser.feed(msg.data)
                except pf.SpdyError:
                    await self.send(self.writer.goaway(0, 1))
                    return
                for frame in frames:
                    await self._frame(frame)
        finally:
            for task in self.tasks.values():
                task.cancel()

    async def _frame(self, frame: pf.Frame) -> None:
        if frame.type == pf.SYN_STREAM:
            await self.send(self.writer.syn_reply(frame.stream_id))
            kind, request_id = frame.header("streamtype"), frame.header("requestid")
            pair = self.pairs.setdefault(request_id, {})
            pair[kind] = frame.stream_id
            try:
                self.port_of[frame.stream_id] = int(frame.header("port"))
            except ValueError:
                self.port_of[frame.stream_id] = 0
            if kind == "data":
                self.inputs[frame.stream_id] = Pipe()
            if "data" in pair and "error" in pair:
                del self.pairs[request_id]
                self.tasks[pair["data"]] = asyncio.ensure_future(self._connection(pair["data"], pair["error"]))
        elif frame.type == 0:
            pipe = self.inputs.get(frame.stream_id)
            if pipe is not None:
                await pipe.write(frame.data)
                if frame.fin:
                    pipe.close()
        elif frame.type == pf.RST_STREAM:
            task = self.tasks.pop(frame.stream_id, None)
            if task is not None:
                task.cancel()
            self.inputs.pop(frame.stream_id, None)
        elif frame.type == pf.PING:
            await self.send(self.writer.ping(frame.data))

    async def _connection(self, data_id: int, error_id: int) -> None:
        port = self.port_of.get(data_id, 0)
        try:
            if port in self.ports:
                await http_echo(
                    self.pod, port, self.inputs[data_id], lambda chunk: self.send(self.writer.data(data_id, chunk))
                )
            else:
                await self.send(self.writer.data(error_id, refused(self.pod, port)))
            await self.send(self.writer.data(data_id, b"", fin=True))
            await self.send(self.writer.data(error_id, b"", fin=True))
        finally:
            self.inputs.pop(data_id, None)
            self.tasks.pop(data_id, None)
