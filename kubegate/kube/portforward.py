"""Port-forward protocols: SPDY/3.1 as kubectl 1.31+ tunnels it through a WebSocket, and the legacy
WebSocket channel protocol.

The tunnel (`SPDY/3.1+portforward.k8s.io`) carries raw SPDY/3.1 bytes in binary WebSocket messages,
with no alignment between frames and messages. Each forwarded TCP connection is two client-opened
streams whose SYN_STREAM headers say `streamtype` (data or error), `port` and `requestid`. Header
blocks are zlib-compressed with one shared dictionary per direction and a context that lasts the
whole connection, so every header block must be inflated in order to read any later one.

Legacy port-forward (`v4.channel.k8s.io` on pods/portforward?ports=a,b) is one connection per port:
channel 2i carries port i's data and 2i+1 its errors; the server's first message on every channel is
the port as a little-endian uint16.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
VERSION = 3

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_FRAME = 1 << 24

_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()
"""The zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1): the spec's words, each
with its big-endian length, then its run of status codes, dates and media types."""


class SpdyError(ValueError):
    """Bytes that are not SPDY/3.1 as the tunnel carries it."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One SPDY frame. Control frames have `type`; data frames have type 0 and `data`."""

    type: int
    flags: int = 0
    stream_id: int = 0
    headers: dict[str, list[str]] = field(default_factory=dict)
    data: bytes = b""
    status: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""


class Parser:
    """Frames from one direction of a SPDY connection, fed as bytes arrive in any split."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    @property
    def at_boundary(self) -> bool:
        """True when everything fed so far ended on a frame boundary."""
        return not self._buf

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            length = int.from_bytes(self._buf[5:8], "big")
            if len(self._buf) < 8 + length:
                break
            head, body = bytes(self._buf[:8]), bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            frames.append(self._frame(head, body))
        return frames

    def _frame(self, head: bytes, body: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:
            return Frame(0, flags, int.from_bytes(head[:4], "big") & 0x7FFFFFFF, data=body)
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        kind = int.from_bytes(head[2:4], "big")
        if version != VERSION:
            raise SpdyError(f"SPDY version {version} is not 3")
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            offset = 10 if kind == SYN_STREAM else 4
            if len(body) < offset:
                raise SpdyError("a header frame is too short")
            return Frame(kind, flags, _stream_id(body), headers=self._headers(body[offset:]))
        if kind in (RST_STREAM, GOAWAY, WINDOW_UPDATE) and len(body) >= 8:
            return Frame(kind, flags, _stream_id(body), status=int.from_bytes(body[4:8], "big"))
        if kind == PING and len(body) >= 4:
            return Frame(kind, flags, data=body[:4])
        return Frame(kind, flags, data=body)

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise SpdyError(f"a header block does not inflate: {exc}") from exc
        headers: dict[str, list[str]] = {}
        try:
            count, pos = int.from_bytes(raw[:4], "big"), 4
            for _ in range(count):
                name, pos = _string(raw, pos)
                value, pos = _string(raw, pos)
                headers.setdefault(name.decode().lower(), []).extend(v.decode() for v in value.split(b"\0"))
        except (IndexError, UnicodeDecodeError) as exc:
            raise SpdyError("a header block is malformed") from exc
        return headers


def _stream_id(body: bytes) -> int:
    return int.from_bytes(body[:4], "big") & 0x7FFFFFFF


def _string(raw: bytes, pos: int) -> tuple[bytes, int]:
    length = int.from_bytes(raw[pos : pos + 4], "big")
    end = pos + 4 + length
    if end > len(raw):
        raise IndexError("header string runs past the block")
    return raw[pos + 4 : end], end


class Writer:
    """Frames for one direction of a SPDY connection (the header compression context lives here)."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def _control(self, kind: int, flags: int, body: bytes) -> bytes:
        if len(body) >= MAX_FRAME:
            raise SpdyError("a control frame is too long")
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body

    def _block(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v.encode())) + v.encode()
            for k, v in headers.items()
        )
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
        body = struct.pack(">IIH", stream_id, 0, 0) + self._block(headers)
        return self._control(SYN_STREAM, FLAG_FIN if fin else 0, body)

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None, fin: bool = False) -> bytes:
        body = struct.pack(">I", stream_id) + self._block(headers or {})
        return self._control(SYN_REPLY, FLAG_FIN if fin else 0, body)

    def rst_stream(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: bytes) -> bytes:
        return self._control(PING, 0, ping_id[:4])

    def goaway(self, last_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))

    @staticmethod
    def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
        if len(payload) >= MAX_FRAME:
            raise SpdyError("a data frame is too long")
        return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload


def legacy_port(data: bytes) -> int | None:
    """The port a legacy port-forward channel's first server message announces."""
    return int.from_bytes(data[:2], "little") if len(data) >= 2 else None


def legacy_port_prefix(port: int) -> bytes:
    return port.to_bytes(2, "little")


@dataclass(slots=True)
class Forwarded:
    """One forwarded TCP connection as the gateway saw it: its port and the bytes each way."""

    request_id: str
    port: int
    opened: float
    data_stream: int = 0
    error_stream: int = 0
    bytes_to_pod: int = 0
    bytes_from_pod: int = 0
    client_done: bool = False
    pod_done: bool = False
    reset: bool = False
    error: str = ""
    closed: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "request_id": self.request_id,
            "port": self.port,
            "bytes_to_pod": self.bytes_to_pod,
            "bytes_from_pod": self.bytes_from_pod,
            "reset": self.reset,
            "error": self.error,
            "opened": self.opened,
            "closed": self.closed,
        }


MAX_ERROR_TEXT = 4096


class TunnelObserver:
    """Follows the streams of a tunnelled SPDY port-forward from both directions' frames and reports
    each forwarded connection once it is over (both sides finished, or a stream reset)."""

    def __init__(self) -> None:
        self.connections: dict[str, Forwarded] = {}
        self._streams: dict[int, tuple[str, str]] = {}  # stream id -> (request id, stream type)

    def from_client(self, frames: list[Frame], now: float) -> list[Forwarded]:
        done: list[Forwarded] = []
        for f in frames:
            if f.type == SYN_STREAM:
                request_id, kind = f.header("requestid"), f.header("streamtype")
                try:
                    port = int(f.header("port"))
                except ValueError:
                    port = 0
                conn = self.connections.get(request_id)
                if conn is None:
                    conn = self.connections[request_id] = Forwarded(request_id, port, now)
                self._streams[f.stream_id] = (request_id, kind)
                if kind == "data":
                    conn.data_stream = f.stream_id
                elif kind == "error":
                    conn.error_stream = f.stream_id
                continue
            conn, kind = self._lookup(f.stream_id)
            if conn is None:
                continue
            if f.type == 0 and kind == "data":
                conn.bytes_to_pod += len(f.data)
                conn.client_done = conn.client_done or f.fin
            elif f.type == RST_STREAM:
                conn.reset = True
            done += self._finished(conn, now)
        return done

    def from_pod(self, frames: list[Frame], now: float) -> list[Forwarded]:
        done: list[Forwarded] = []
        for f in frames:
            conn, kind = self._lookup(f.stream_id)
            if conn is None:
                continue
            if f.type == 0 and kind == "data":
                conn.bytes_from_pod += len(f.data)
                conn.pod_done = conn.pod_done or f.fin
            elif f.type == 0 and kind == "error" and len(conn.error) < MAX_ERROR_TEXT:
                conn.error += f.data.decode(errors="replace")[: MAX_ERROR_TEXT - len(conn.error)]
            elif f.type == SYN_REPLY and kind == "data":
                conn.pod_done = conn.pod_done or f.fin
            elif f.type == RST_STREAM:
                conn.reset = True
            done += self._finished(conn, now)
        return done

    def close(self, now: float) -> list[Forwarded]:
        """The tunnel ended: every connection still open ends with it."""
        left = [c for c in self.connections.values() if c.closed is None]
        for conn in left:
            conn.closed = now
        self.connections.clear()
        return left

    def open_error_streams(self) -> list[int]:
        return [c.error_stream for c in self.connections.values() if c.closed is None and c.error_stream]

    def _lookup(self, stream_id: int) -> tuple[Forwarded | None, str]:
        found = self._streams.get(stream_id)
        if found is None:
            return None, ""
        return self.connections.get(found[0]), found[1]

    def _finished(self, conn: Forwarded, now: float) -> list[Forwarded]:
        if conn.closed is not None or not (conn.reset or (conn.client_done and conn.pod_done)):
            return []
        conn.closed = now
        self.connections.pop(conn.request_id, None)
        for stream_id in (conn.data_stream, conn.error_stream):
            self._streams.pop(stream_id, None)
        return [conn]
