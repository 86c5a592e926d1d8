"""What the recording of one upgraded stream keeps, from the messages as the client exchanged them.

exec and attach become asciicast (`o` for the output the client received, already masked by the
masking stage; `i` for stdin, scrubbed here with the request's masks since it reaches the pod as typed;
`r` for resizes) and end with the exit code; port-forward becomes one record per forwarded TCP
connection with its port and bytes each way, followed in the SPDY frames the bridge decoded (or the
legacy channels).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubegate.flow import Message
from kubegate.kube import channels
from kubegate.kube import portforward as pf
from kubegate.masking.text import TextMasker
from kubegate.recording.asciicast import CastBuilder


class StreamRecord:
    """Bytes each way; subclasses add what their kind of stream is made of."""

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.forwarded: list[dict[str, Any]] = []
        self.cast: CastBuilder | None = None

    def add(self, message: Message) -> None:
        if message.from_client:
            self.bytes_in += len(message.data)
        else:
            self.bytes_out += len(message.data)

    def finish(self) -> None:
        """The stream ended: close what is still open."""

    def summary(self) -> dict[str, Any]:
        return {"bytes_in": self.bytes_in, "bytes_out": self.bytes_out}


class CastRecord(StreamRecord):
    """exec and attach as asciicast, with the command's exit code and status."""

    def __init__(self, stdin: TextMasker | None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.cast = CastBuilder(clock)
        self._stdin = stdin
        self.exit_code: int | None = None
        self.status = ""

    def add(self, message: Message) -> None:
        assert self.cast is not None
        channel = message.channel
        if message.from_client:
            if channel == channels.STDIN and message.close:
                if self._stdin is not None:
                    self.cast.write("i", self._stdin.flush())
            elif channel == channels.STDIN:
                self.bytes_in += len(message.data)
                self.cast.write("i", self._stdin.feed(message.data) if self._stdin else message.data)
            elif channel == channels.RESIZE and not message.close:
                size = channels.resize(message.data)
                if size is not None:
                    self.cast.resize(*size)
        elif message.close:
            return
        elif channel == channels.ERROR:
            self.exit_code = channels.exit_code(message.data)
            self.status = channels.status_message(message.data)
        elif channel in (channels.STDOUT, channels.STDERR) and message.data:
            self.bytes_out += len(message.data)
            self.cast.write("o", message.data, stream=str(channel))

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "exit_code": self.exit_code, "status": self.status}


class TunnelRecord(StreamRecord):
    """Port-forward through the SPDY tunnel: each forwarded connection recorded as it ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.started = clock()
        self._seen = pf.TunnelObserver()
        self.connections = 0

    def _done(self, finished: list[pf.Forwarded]) -> None:
        for conn in finished:
            self.connections += 1
            record = conn.as_dict()
            record["opened"] = round(conn.opened - self.started, 6)
            record["closed"] = round((conn.closed or conn.opened) - self.started, 6)
            self.forwarded.append(record)

    def add(self, message: Message) -> None:
        super().add(message)
        frames = list(message.frames)
        if message.from_client:
            self._done(self._seen.from_client(frames, self.clock()))
        else:
            self._done(self._seen.from_pod(frames, self.clock()))

    def finish(self) -> None:
        self._done(self._seen.close(self.clock()))

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "connections": self.connections}


class LegacyForwardRecord(StreamRecord):
    """Port-forward over channels: one connection per port; the pod's first message on each channel
    names the port."""

    def __init__(self, ports: list[int], clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.started = clock()
        self._conns = [pf.Forwarded(str(i), port, 0.0) for i, port in enumerate(ports)]
        self._announced: set[int] = set()

    def _conn(self, channel: int) -> pf.Forwarded | None:
        return self._conns[channel // 2] if channel // 2 < len(self._conns) else None

    def add(self, message: Message) -> None:
        channel = message.channel
        conn = self._conn(channel) if channel is not None else None
        if conn is None or channel is None:
            return
        payload = message.data
        if message.from_client:
            if channel % 2 == 0:
                conn.bytes_to_pod += len(payload)
                self.bytes_in += len(payload)
            return
        if channel not in self._announced:
            self._announced.add(channel)
            port = pf.legacy_port(payload)
            if port is not None:
                conn.port = port
            payload = payload[2:]
        if channel % 2 == 0:
            conn.bytes_from_pod += len(payload)
            self.bytes_out += len(payload)
        elif len(conn.error) < pf.MAX_ERROR_TEXT:
            conn.error += payload.decode(errors="replace")[: pf.MAX_ERROR_TEXT - len(conn.error)]

    def finish(self) -> None:
        now = round(self.clock() - self.started, 6)
        for conn in self._conns:
            if conn.closed is None:
                conn.closed = now
                self.forwarded.append(conn.as_dict())

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "connections": len(self._conns)}
