"""Hold many watches open through one target and measure how late each fanned-out event arrives.

Prints `ready N` once every watch has its first (ADDED) event, then, after `--events` more events
reached every watch (or `--timeout`), one JSON line: events received and expected, latency p50/p99/max.
Latency is the monotonic clock at receipt minus the one bench.upstream stamped as it wrote the event
to this watch (CLOCK_MONOTONIC is one clock for every process on the machine).

The client is a bare asyncio protocol on uvloop that only looks for the stamp in the bytes it
receives: with a thousand streams on a small machine, a heavier client would measure itself.

Run (the harness does): python -m bench.watchclient --url URL --watches 1000 --events 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import time
from urllib.parse import urlsplit

import orjson
import uvloop

from bench.upstream import SENT_ANNOTATION

CONNECT_AT_ONCE = 64
MARK = f'"{SENT_ANNOTATION}":"'.encode()


class Watch(asyncio.Protocol):
    """One watch stream: counts stamped events and records how late each arrived."""

    def __init__(
        self,
        request: bytes,
        latencies: list[float],
        first: asyncio.Future[None],
        done: asyncio.Future[None],
        events: int,
    ) -> None:
        self.request, self.latencies, self.first, self.done, self.events = request, latencies, first, done, events
        self.seen = 0
        self.status = b""
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        received = time.monotonic_ns()
        if not self.status:
            self.status = data[:12]
            if not self.status.startswith(b"HTTP/1.1 200"):
                self._fail(f"watch answered {data[:300]!r}")
                return
        buffer = self.tail + data
        at = buffer.find(MARK)
        while at >= 0:
            end = buffer.find(b'"', at + len(MARK))
            if end < 0:
                break
            stamp = buffer[at + len(MARK) : end]
            if self.seen and stamp.isdigit():  # (a stamp cut by chunk framing is not counted)
                self.latencies.append((received - int(stamp)) / 1e6)
            elif not self.first.done():
                self.first.set_result(None)
            self.seen += 1
            if self.seen > self.events and not self.done.done():
                self.done.set_result(None)
            at = buffer.find(MARK, end)
        self.tail = buffer[at:] if at >= 0 else buffer[-len(MARK) :]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(f"watch closed after {self.seen} events: {exc}")

    def _fail(self, why: str) -> None:
        for future in (self.first, self.done):
            if not future.done():
                future.set_exception(RuntimeError(why))


async def run(args: argparse.Namespace) -> dict[str, float | int]:
    url = urlsplit(args.url)
    authorization = os.environ.get("BENCH_AUTHORIZATION", "")
    request = (
        f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: application/json\r\n"
        + (f"Authorization: {authorization}\r\n" if authorization else "")
        + "\r\n"
    ).encode()
    context: ssl.SSLContext | None = None
    if url.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    firsts: list[asyncio.Future[None]] = []
    dones: list[asyncio.Future[None]] = []
    transports: list[asyncio.BaseTransport] = []

    async def open_one() -> None:
        first, done = loop.create_future(), loop.create_future()
        firsts.append(first)
        dones.append(done)
        async with gate:
            transport, _ = await loop.create_connection(
                lambda: Watch(request, latencies, first, done, args.events), url.hostname, url.port, ssl=context
            )
            transports.append(transport)
            await first

    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(args.watches))), args.timeout)
    print(f"ready {len(transports)}", flush=True)
    await asyncio.wait(dones, timeout=max(args.timeout - (time.monotonic() - started), 1))
    for transport in transports:
        transport.close()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "received": len(latencies),
        "expected": args.watches * args.events,
        "p50_ms": q[49],
        "p99_ms": q[98],
        "max_ms": max(latencies, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    print(orjson.dumps(uvloop.run(run(args))).decode(), flush=True)


if __name__ == "__main__":
    main()
