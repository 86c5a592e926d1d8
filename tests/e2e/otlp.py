"""OTLP trace receivers on threads of their own, for processes that export to the test: kubegate over
OTLP/HTTP, and kube-apiserver, whose exporter speaks only OTLP/gRPC.

There is no gRPC server in the test dependencies, so the gRPC side is plain HTTP/2 over a socket, just what
one unary Export call needs: the server preface, SETTINGS and PING acks, WINDOW_UPDATEs for what was read,
each stream's DATA reassembled into its length-prefixed message, and an OK answer with an empty
ExportTraceServiceResponse (`:status 200`, `content-type: application/grpc`, trailer `grpc-status: 0`).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, WINDOW_UPDATE = 0x0, 0x1, 0x4, 0x6, 0x8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
# HPACK, no Huffman: ":status: 200" is static entry 8; content-type (static name 31) as a literal value;
# "grpc-status: 0" as a literal name and value. None is added to the dynamic table.
RESPONSE_HEADERS = bytes([0x88, 0x0F, 0x10, 16]) + b"application/grpc"
TRAILERS = bytes([0x00, 11]) + b"grpc-status" + bytes([1]) + b"0"
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"


@dataclass
class Spans:
    """What a receiver was sent: each span with its resource's service.name."""

    received: list[tuple[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message: ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in message.resource_spans:
                service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), "")
                self.received.extend((service, s) for ss in rs.scope_spans for s in ss.spans)

    def of(self, service: str) -> list[Any]:
        with self.lock:
            return [span for name, span in self.received if name == service]


@contextmanager
def otlp_http_receiver() -> Iterator[tuple[str, Spans]]:
    """(the /v1/traces URL, what it received)."""
    spans = Spans()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            spans.add(ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", spans
    finally:
        server.shutdown()
        server.server_close()


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _read(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _serve_grpc(conn: socket.socket, spans: Spans) -> None:
    with conn:
        try:
            if _read(conn, len(PREFACE)) != PREFACE:
                return
            conn.sendall(_frame(SETTINGS, 0, 0))
            bodies: dict[int, bytes] = {}
            while True:
                head = _read(conn, 9)
                length, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
                stream = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
                payload = _read(conn, length)
                if kind == SETTINGS and not flags & ACK:
                    conn.sendall(_frame(SETTINGS, ACK, 0))
                elif kind == PING and not flags & ACK:
                    conn.sendall(_frame(PING, ACK, 0, payload))
                elif kind == HEADERS:
                    bodies.setdefault(stream, b"")
                elif kind == DATA:
                    bodies[stream] = bodies.get(stream, b"") + payload
                    if length:
                        more = struct.pack(">I", length)
                        conn.sendall(_frame(WINDOW_UPDATE, 0, 0, more) + _frame(WINDOW_UPDATE, 0, stream, more))
                if kind in (HEADERS, DATA) and flags & END_STREAM:
                    body = bodies.pop(stream, b"")
                    if len(body) >= 5 and body[0] == 0:  # uncompressed, length-prefixed
                        spans.add(ExportTraceServiceRequest.FromString(body[5 : 5 + int.from_bytes(body[1:5], "big")]))
                    conn.sendall(
                        _frame(HEADERS, END_HEADERS, stream, RESPONSE_HEADERS)
                        + _frame(DATA, 0, stream, EMPTY_MESSAGE)
                        + _frame(HEADERS, END_HEADERS | END_STREAM, stream, TRAILERS)
                    )
        except (ConnectionError, OSError):
            return


@contextmanager
def otlp_grpc_receiver() -> Iterator[tuple[str, Spans]]:
    """(HOST:PORT for an OTLP/gRPC exporter without TLS, what it received)."""
    spans = Spans()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve_grpc, args=(conn, spans), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", spans
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        listener.close()
