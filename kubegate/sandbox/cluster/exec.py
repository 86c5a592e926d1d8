"""pods/exec and pods/attach over WebSocket, as kube-apiserver and the kubelet serve them.

exec starts the sandbox shell (shell.py) in the container with the pod's environment; attach joins
the container's main process, which prints what the container logs and logs what it reads. Both
speak the channel protocol (kubegate.kube.channels): stdout first gets an empty message to say the
stream is open, the error channel gets the exit Status, then the socket closes normally. With a
TTY, a line discipline echoes keystrokes, edits lines, turns Ctrl-C into an interrupt and Ctrl-D into
end of input, and writes `\\n` as `\\r\\n`, as a kernel terminal would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from kubegate.kube import channels
from kubegate.kube.channels import Frame, Protocol

from .errors import bad_request
from .logs import LogBook, choose_container
from .shell import Filesystem, Io, Output, Pipe, Shell
from .store import Store

CHANNEL_PROTOCOLS = (
    channels.V5,
    channels.V4,
    channels.V4_BASE64,
    channels.V3,
    channels.V2,
    channels.V1,
    channels.BASE64,
)
KUBERNETES_ENV = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
}


@dataclass
class Runtime:
    """What runs inside the sandbox's pods: a filesystem per container, for as long as the pod (uid) lives."""

    store: Store
    logs: LogBook
    _filesystems: dict[tuple[str, str], Filesystem] = field(default_factory=dict)

    def filesystem(self, pod: dict[str, Any], container: str) -> Filesystem:
        key = (pod["metadata"].get("uid", pod["metadata"]["name"]), container)
        fs = self._filesystems.get(key)
        if fs is None:
            fs = self._filesystems[key] = Filesystem()
            fs.write("/etc/hostname", pod["metadata"]["name"].encode() + b"\n")
        return fs

    def environment(self, pod: dict[str, Any], container: str, tty: bool) -> dict[str, str]:
        """The container's environment as the kubelet builds it: PATH and HOSTNAME, the spec's env and
        envFrom (values from Secrets and ConfigMaps resolved), the service variables, HOME, TERM."""
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        spec_container: dict[str, Any] = next((c for c in containers if c.get("name") == container), {})
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME": meta["name"]}
        for source in spec_container.get("envFrom") or []:
            ref = source.get("configMapRef") or source.get("secretRef")
            data = self._data(
                namespace, "configmaps" if "configMapRef" in source else "secrets", (ref or {}).get("name", "")
            )
            env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for var in spec_container.get("env") or []:
            env[var["name"]] = self._value(pod, var)
        env.update(KUBERNETES_ENV)
        env["HOME"] = "/root"
        if tty:
            env["TERM"] = "xterm"
        return env

    def _value(self, pod: dict[str, Any], var: dict[str, Any]) -> str:
        if "value" in var:
            return str(var["value"])
        source = var.get("valueFrom") or {}
        namespace = pod["metadata"].get("namespace", "")
        for key, resource in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if key in source:
                ref = source[key]
                return self._data(namespace, resource, ref.get("name", "")).get(ref.get("key", ""), "")
        field_path = (source.get("fieldRef") or {}).get("fieldPath", "")
        return str(
            {
                "metadata.name": pod["metadata"]["name"],
                "metadata.namespace": namespace,
                "status.podIP": (pod.get("status") or {}).get("podIP", ""),
            }.get(field_path, "")
        )

    def _data(self, namespace: str, resource: str, name: str) -> dict[str, str]:
        obj = self.store.get(f"/{resource}", namespace, name) or {}
        if resource == "secrets":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        return dict(obj.get("data") or {})


class Terminal:
    """A line discipline: raw keystrokes in, echo out, cooked lines to `deliver`, Ctrl-D to `eof`."""

    def __init__(self, echo: Output, interrupt: Callable[[], bool], deliver: Output, eof: Callable[[], None]) -> None:
        self._echo = echo
        self._interrupt = interrupt
        self._deliver = deliver
        self._eof = eof
        self._line = bytearray()

    async def feed(self, data: bytes) -> None:
        for b in data:
            if b in (0x0D, 0x0A):
                await self._echo(b"\r\n")
                line = bytes(self._line) + b"\n"
                self._line.clear()
                await self._deliver(line)
            elif b in (0x7F, 0x08):
                if self._line:
                    self._line.pop()
                    await self._echo(b"\b \b")
            elif b == 0x03:
                await self._echo(b"^C\r\n")
                self._line.clear()
                if not self._interrupt():
                    await self._deliver(b"\n")
            elif b == 0x04:
                if self._line:
                    line = bytes(self._line)
                    self._line.clear()
                    await self._deliver(line)
                else:
                    self._eof()
            elif b == 0x15:
                await self._echo(b"\b \b" * len(self._line))
                self._line.clear()
            else:
                self._line.append(b)
                await self._echo(bytes((b,)))


def _flag(query: Any, name: str) -> bool:
    value = query.get(name)
    return value is not None and value.lower() not in ("0", "false")


@dataclass
class Channels:
    """The server's end of one channel-protocol WebSocket."""

    ws: web.WebSocketResponse
    proto: Protocol

    async def send(self, channel: int, data: bytes) -> None:
        if self.ws.closed:
            return
        message = channels.encode(self.proto, Frame(channel, data))
        with contextlib.suppress(ConnectionResetError):
            if isinstance(message, str):
                await self.ws.send_str(message)
            else:
                await self.ws.send_bytes(message)

    async def finish(self, status: dict[str, Any]) -> None:
        await self.send(channels.ERROR, orjson.dumps(status))
        await self.ws.close()


async def open_channels(request: web.Request) -> Channels:
    """Answer the upgrade with the first channel protocol the client offers that the sandbox speaks."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise bad_request("Upgrade request required")
    ws = web.WebSocketResponse(
        protocols=CHANNEL_PROTOCOLS, autoping=True, max_msg_size=16 * 1024 * 1024, compress=False
    )
    await ws.prepare(request)
    proto = channels.protocol(ws.ws_protocol or channels.V1)
    assert proto is not None
    return Channels(ws, proto)


async def _receive(ch: Channels, on_frame: Callable[[Frame], Awaitable[None]]) -> None:
    async for msg in ch.ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            continue
        try:
            frame = channels.decode(ch.proto, msg.data)
        except channels.ProtocolError:
            continue
        await on_frame(frame)


async def serve_exec(request: web.Request, pod: dict[str, Any], runtime: Runtime) -> web.StreamResponse:
    query = request.query
    container = choose_container(pod, query.get("container", ""))
    command = query.getall("command", [])
    if not command:
        raise bad_request("you must specify at least one command for the container")
    tty, want_stdin = _flag(query, "tty"), _flag(query, "stdin")
    want_stdout, want_stderr = _flag(query, "stdout"), _flag(query, "stderr")
    if not (want_stdin or want_stdout or want_stderr):
        raise bad_request("you must specify at least 1 of stdin, stdout, stderr")
    ch = await open_channels(request)
    shell = Shell(
        runtime.filesystem(pod, container), runtime.environment(pod, container, tty), hostname=pod["metadata"]["name"]
    )
    out = _writer(ch, channels.STDOUT, tty, want_stdout)
    err = out if tty else _writer(ch, channels.STDERR, False, want_stderr)
    stdin = Pipe()
    terminal = Terminal(out, shell.interrupt, stdin.write, stdin.close) if tty and want_stdin else None
    if not want_stdin:
        stdin.close()
    await ch.send(channels.STDOUT if want_stdout else channels.STDERR if want_stderr else channels.ERROR, b"")
    program = asyncio.ensure_future(shell.run_argv(command, Io(stdin, out, err), interactive=tty and want_stdin))

    async def on_frame(frame: Frame) -> None:
        if frame.channel == channels.STDIN and want_stdin:
            if frame.close:
                stdin.close()
            elif terminal is not None:
                await terminal.feed(frame.data)
            else:
                await stdin.write(frame.data)
        elif frame.channel == channels.RESIZE and not frame.close:
            size = channels.resize(frame.data)
            if size is not None:
                shell.size = size

    receiver = asyncio.ensure_future(_receive(ch, on_frame))
    try:
        await asyncio.wait({program, receiver}, return_when=asyncio.FIRST_COMPLETED)
        if not program.done():
            program.cancel()
            return ch.ws
        code = program.result()
        await ch.finish(channels.success_status() if code == 0 else channels.exit_status(code, command))
    finally:
        for task in (program, receiver):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return ch.ws


def _writer(ch: Channels, channel: int, tty: bool, enabled: bool) -> Output:
    async def write(data: bytes) -> None:
        if enabled and data:
            await ch.send(channel, data.replace(b"\n", b"\r\n") if tty else data)

    return write


async def serve_attach(request: web.Request, pod: dict[str, Any], runtime: Runtime) -> web.StreamResponse:
    """The main process echoes what it reads into the container log, and everything the container logs
    from now on is its output."""
    query = request.query
    container = choose_container(pod, query.get("container", ""))
    tty, want_stdin = _flag(query, "tty"), _flag(query, "stdin")
    ch = await open_channels(request)
    namespace, name = pod["metadata"].get("namespace", ""), pod["metadata"]["name"]
    default = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
    out = _writer(ch, channels.STDOUT, tty, _flag(query, "stdout"))
    follow = runtime.logs.follow(namespace, name)

    async def log(data: bytes) -> None:
        runtime.logs.append(namespace, name, data.decode(errors="replace"), container)

    terminal = Terminal(out, lambda: False, log, lambda: None) if tty and want_stdin else None
    await ch.send(channels.STDOUT, b"")

    async def relay() -> None:
        while (line := await follow.get()) is not None:
            if line.container == container or (line.container is None and container == default):
                await out(line.text.encode() + b"\n")

    async def on_frame(frame: Frame) -> None:
        if frame.channel != channels.STDIN or frame.close or not want_stdin:
            return
        await (terminal.feed(frame.data) if terminal is not None else log(frame.data))

    tasks = {asyncio.ensure_future(relay()), asyncio.ensure_future(_receive(ch, on_frame))}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await ch.finish(channels.success_status())
    finally:
        runtime.logs.unfollow(namespace, name, follow)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return ch.ws
