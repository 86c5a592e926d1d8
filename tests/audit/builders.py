"""Helpers for audit tests: a chain of recorded events, a receiver that keeps what is POSTed, tampering."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import orjson
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubegate.identity.model import Identity
from kubegate.recording.chain import GENESIS_HASH, NewEvent, event_hash
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store
from kubegate.store.tables import chain_head, events

DEV = Identity(
    issuer="https://idp.example",
    subject="dev",
    username="idp#dev",
    groups=("developers",),
    claims={"repository": "acme/app", "run_id": "42"},
)


async def record(store: Store, requests: int, *, session: str = "k") -> None:
    """`requests` request events of one kubectl session (plus its session event)."""
    recorder = Recorder(store)
    flow = SimpleNamespace(
        kubectl_session=session,
        kubectl_command="kubectl get",
        identity=DEV,
        connection=SimpleNamespace(name="dev"),
        request=SimpleNamespace(headers={}, remote="10.0.0.7"),
    )
    sid = recorder.session_for(flow)  # type: ignore[arg-type]
    for i in range(requests):
        await recorder.record_event(sid, "request", {"path": f"/api/v1/pods/p{i}"}, durable=True)
    await recorder.close()


async def rewrite_chain(store: Store, edit: Callable[[str], str]) -> None:
    """What an intruder with write access does: edit every event's data and rebuild every hash and the head."""
    async with store.write() as conn:
        rows = (await conn.execute(sa.select(events).order_by(events.c.seq))).all()
        prev = GENESIS_HASH
        for row in rows:
            data = edit(row.data)
            digest = event_hash(
                NewEvent(row.session_id, row.ts, row.type, data, row.verb, row.resource, row.namespace), prev
            )
            await conn.execute(
                sa.update(events).where(events.c.seq == row.seq).values(data=data, prev_hash=prev, hash=digest)
            )
            prev = digest
        await conn.execute(sa.update(chain_head).values(hash=prev))


async def truncate_chain(store: Store, keep: int) -> None:
    """Cut the chain after event `keep` and move the head back to it: the rest still verifies in itself."""
    async with store.write() as conn:
        last = (await conn.execute(sa.select(events.c.hash).where(events.c.seq == keep))).scalar_one()
        await conn.execute(sa.delete(events).where(events.c.seq > keep))
        await conn.execute(sa.update(chain_head).values(seq=keep, hash=last))


@dataclass
class Receiver:
    url: str = ""
    failures: int = 0
    received: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """An HTTP endpoint that answers 503 `failures` times, then keeps each body it is sent."""
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if state.failures > 0:
            state.failures -= 1
            return web.Response(status=503, text="busy")
        state.received.append(body)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/hook"))
    try:
        yield state
    finally:
        await server.close()


async def record_requests(store: Store, n: int, *, recorder: Recorder | None = None) -> None:
    """`n` requests as the recorder stage writes them: a request event, then its response."""
    own = recorder is None
    rec = recorder or Recorder(store)
    flow = SimpleNamespace(
        kubectl_session="kx",
        kubectl_command="kubectl get pods",
        identity=DEV,
        connection=SimpleNamespace(name="dev"),
        request=SimpleNamespace(headers={"User-Agent": "kubectl/v1.32.4"}, remote="10.0.0.7"),
    )
    sid = rec.session_for(flow)  # type: ignore[arg-type]
    for i in range(n):
        flow_id = uuid.uuid4().hex
        seq = await rec.record_event(
            sid,
            "request",
            {
                "flow": flow_id,
                "method": "GET",
                "path": f"/api/v1/namespaces/default/pods/p{i}",
                "query": "",
                "info": {
                    "verb": "get",
                    "is_resource_request": True,
                    "api_version": "v1",
                    "namespace": "default",
                    "resource": "pods",
                    "name": f"p{i}",
                },
                "decision": {
                    "action": "allow",
                    "masks": ["secret-values"],
                    "matches": [{"rule": "devs", "action": "allow"}],
                },
            },
            durable=True,
            counts_request=True,
        )
        await rec.record_event(
            sid, "response", {"flow": flow_id, "request_seq": seq, "status": 200}, durable=True, outcome="ok"
        )
    if own:
        await rec.close()


@dataclass
class CheckpointReceiver:
    """A webhook anchor's receiver as docs/audit.md specifies it, on a thread of its own (so a CLI that runs
    its own event loop can reach it): POST /checkpoints keeps a checkpoint under its number, GET
    /checkpoints/{number} answers it, or 404. `held` is what it keeps, for tests to lose or replace."""

    url: str = ""
    held: dict[int, bytes] = field(default_factory=dict)
    read_status: int = 200
    reads: list[int] = field(default_factory=list)

    @property
    def read_url(self) -> str:
        return self.url + "/{number}"


@contextmanager
def checkpoint_receiver() -> Iterator[CheckpointReceiver]:
    state = CheckpointReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.held[orjson.loads(body)["checkpoint"]["number"]] = body
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            number = int(self.path.rsplit("/", 1)[1])
            state.reads.append(number)
            body = state.held.get(number) if state.read_status == 200 else b""
            self.send_response(state.read_status if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/checkpoints"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
