"""The benchmark's own upstream: watch streams with fan-out, and the recorded JSON when nginx is absent.

A watch answers at once with one ADDED event (as a real watch sends the current state), then holds
the stream open. `POST /bench/fire` writes one MODIFIED event to every open watch; the event's pod
carries the monotonic clock of the moment it was written to that watch, so the watch client measures
what lies between the upstream and the client (the proxy) for each delivery, across processes, and
not the time the upstream itself takes to write to a thousand streams one after the other.
`GET /bench/watchers` counts open watches.

Run (the harness does): python -m bench.upstream --root DIR --cert C --key K [--port P]
It prints `listening PORT` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import orjson
import uvloop
from aiohttp import web

from bench.fixtures import WATCH_PATH, make_pod
from kubegate.tls import server_ssl_context

SENT_ANNOTATION = "bench.kubegate.dev/sent-ns"
STAMP = b"0" * 19


def stamped(line: bytes) -> bytes:
    return line.replace(STAMP, str(time.monotonic_ns()).zfill(19).encode(), 1)


class Upstream:
    def __init__(self, root: Path) -> None:
        self.bodies = {"/" + str(f.relative_to(root))[: -len(".json")]: f.read_bytes() for f in root.rglob("*.json")}
        self.watchers: set[web.StreamResponse] = set()
        self.pod = make_pod("web-0", "watch")

    def event(self, kind: str) -> bytes:
        """The event line, its stamp a placeholder `stamped` fills in as it is written to each watch."""
        self.pod["metadata"]["annotations"] = {SENT_ANNOTATION: STAMP.decode()}
        return orjson.dumps({"type": kind, "object": self.pod}) + b"\n"

    async def static(self, request: web.Request) -> web.StreamResponse:
        if request.path == WATCH_PATH and request.query.get("watch") not in (None, "0", "false"):
            return await self.watch(request)
        body = self.bodies.get(request.path)
        if body is None:
            return web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404},
                status=404,
            )
        return web.Response(body=body, content_type="application/json")

    async def watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(stamped(self.event("ADDED")))
        self.watchers.add(response)
        try:
            await asyncio.Event().wait()  # until the client goes away (the handler is cancelled)
        finally:
            self.watchers.discard(response)
        return response

    async def fire(self, request: web.Request) -> web.Response:
        line = self.event("MODIFIED")
        sent = 0
        for response in list(self.watchers):
            try:
                await response.write(stamped(line))
                sent += 1
            except (ConnectionError, RuntimeError):
                self.watchers.discard(response)
        return web.json_response({"sent": sent})

    async def count(self, request: web.Request) -> web.Response:
        return web.json_response({"watchers": len(self.watchers)})


async def serve(args: argparse.Namespace) -> None:
    upstream = Upstream(Path(args.root))
    app = web.Application()
    app.router.add_post("/bench/fire", upstream.fire)
    app.router.add_get("/bench/watchers", upstream.count)
    app.router.add_get("/{tail:.*}", upstream.static)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(
        runner, "127.0.0.1", args.port, backlog=4096, ssl_context=server_ssl_context(Path(args.cert), Path(args.key))
    )
    await site.start()
    print(f"listening {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, default=0)
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
