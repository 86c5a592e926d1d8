"""MCP sessions shared by the workers of one `kubegate serve --workers N` on one host.

The SDK keeps a session in the process that opened it, while SO_REUSEPORT hands each connection to any
worker. So each worker also serves the app on its own Unix socket, in a directory only kubegate's user can
enter (state_dir/workers, mode 0700), and records which worker owns each session it opens (a file per
session id naming the worker). A worker that gets a request for another worker's session passes it on
unchanged to that worker's socket and streams the answer back chunk by chunk (answers can be server-sent
events). The owner handles it as any request: it verifies the bearer token again and the SDK checks that
the session is that user's; nothing the forwarder could add is trusted, and it adds nothing. An id no
worker owns, or whose owner is gone, gets the SDK's own 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
from collections.abc import Callable, Collection
from pathlib import Path

import aiohttp
from aiohttp import web

from kubegate.mcp.routes import MCP

log = logging.getLogger(__name__)

DIRECTORY = "workers"
SWEEP_SECONDS = 30.0
"""How often a worker forgets the sessions the SDK has ended (expired, deleted): a stale record only
costs a forwarded request that the owner answers 404, so this bounds disk use, not correctness."""
SESSION_ID = re.compile(r"[0-9A-Za-z_-]{1,128}")
"""What a session id must look like to be a file name; the SDK's are 32 hex digits."""
HOP_BY_HOP = frozenset(
    h.lower() for h in ("Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade")
)
# Content-Length too on the request: the client library sets it for the body it sends (the same bytes).
REQUEST_DROPPED = HOP_BY_HOP | {"content-length"}
MAX_UNIX_PATH = 107
UNANSWERED = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {
        "code": -32603,
        "message": "kubegate: the worker that holds this MCP session took the request and gave no answer; "
        "check whether the call ran before repeating it",
    },
}


def directory(state_dir: Path) -> Path:
    return state_dir / DIRECTORY


def reset(state_dir: Path) -> None:
    """Before the workers start: no record from an earlier run names a worker that has gone."""
    shutil.rmtree(directory(state_dir), ignore_errors=True)


def private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def came_from_a_worker(request: web.Request) -> bool:
    """Arrived on a worker's Unix socket: already forwarded once, so it is never forwarded again."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return sock is not None and sock.family == socket.AF_UNIX


async def share_sessions(runner: web.AppRunner, state_dir: Path) -> Workers:
    """Make this worker's MCP endpoint share its sessions with the other workers (MCP enabled)."""
    endpoint = runner.app[MCP]
    workers = Workers(state_dir, endpoint.live_sessions, endpoint.gateway.metrics.mcp_forwarded.inc)
    endpoint.workers = workers
    await workers.start(runner)
    log.info("kubegate worker %s shares its MCP sessions through %s", workers.name, workers.socket_path)
    return workers


class Workers:
    """This worker's socket and its records of which worker owns which MCP session."""

    def __init__(
        self,
        state_dir: Path,
        live: Callable[[], Collection[str]],
        counted: Callable[[], None] = lambda: None,
        name: str | None = None,
    ) -> None:
        self.name = name or str(os.getpid())
        self.root = private_dir(directory(state_dir))
        self.sessions = private_dir(self.root / "sessions")
        self.socket_path = self.socket_of(self.name)
        if len(os.fsencode(self.socket_path)) > MAX_UNIX_PATH:
            raise ValueError(
                f"kubegate cannot make its worker socket {self.socket_path}: a Unix socket path has at most "
                f"{MAX_UNIX_PATH} bytes; set a shorter state_dir"
            )
        self.live = live
        self.counted = counted
        """Called for each request passed to its owner (the kubegate_mcp_forwarded_requests counter)."""
        self.mine: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, runner: web.AppRunner) -> None:
        """Serve the app on this worker's socket (the runner is set up, its TCP site not yet started)."""
        await web.UnixSite(runner, str(self.socket_path)).start()
        self._sweeper = asyncio.create_task(self.sweep_forever(), name="mcp-worker-sweep")

    async def stop(self) -> None:
        """After the runner's cleanup: this worker's records and socket go with it."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for session_id in list(self.mine):
            self.release(session_id)
        self.socket_path.unlink(missing_ok=True)

    def socket_of(self, name: str) -> Path:
        return self.root / f"{name}.sock"

    def claim(self, session_id: str) -> None:
        """Record that this worker owns the session (written whole, then renamed: readers see all or nothing)."""
        if session_id in self.mine or not SESSION_ID.fullmatch(session_id):
            return
        temp = self.sessions / f".{session_id}.{self.name}"
        temp.write_text(self.name)
        temp.replace(self.sessions / session_id)
        self.mine.add(session_id)

    def release(self, session_id: str) -> None:
        self.mine.discard(session_id)
        (self.sessions / session_id).unlink(missing_ok=True)

    def owner(self, session_id: str) -> str | None:
        """The worker that owns the session, if any worker does."""
        if session_id in self.mine:
            return self.name
        if not SESSION_ID.fullmatch(session_id):
            return None
        try:
            name = (self.sessions / session_id).read_text()
        except OSError:
            return None
        return name if name.isdigit() else None

    def sweep(self) -> None:
        """Forget the sessions of this worker that the SDK no longer holds."""
        live = self.live()
        for session_id in [s for s in self.mine if s not in live]:
            self.release(session_id)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.sweep()

    async def forward(self, request: web.Request, owner: str) -> web.StreamResponse | None:
        """The owner's answer to `request`, streamed back as it comes; None when the owner is gone (its
        socket does not answer), then its record is dropped and the caller answers as for an unknown id."""
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in REQUEST_DROPPED]
        connector = aiohttp.UnixConnector(path=str(self.socket_of(owner)))
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as client:
            try:
                answer = await client.request(
                    request.method,
                    f"http://worker-{owner}{request.rel_url}",
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                    skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                )
            except aiohttp.ClientConnectorError:
                log.warning("kubegate worker %s, which held an MCP session, does not answer: forgetting it", owner)
                session_id = request.headers.get("Mcp-Session-Id", "")
                if SESSION_ID.fullmatch(session_id):
                    (self.sessions / session_id).unlink(missing_ok=True)
                return None
            except aiohttp.ClientError as exc:  # it took the request and gave no answer: it may have run
                log.warning("kubegate worker %s gave no answer to a forwarded MCP request: %s", owner, exc)
                return web.json_response(UNANSWERED, status=502)
            self.counted()
            async with answer:
                response = web.StreamResponse(status=answer.status, reason=answer.reason)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        response.headers.add(key, value)
                await response.prepare(request)
                with contextlib.suppress(ConnectionResetError):  # the client left: nothing more to pass on
                    async for chunk in answer.content.iter_any():
                        await response.write(chunk)
                    await response.write_eof()
                return response
