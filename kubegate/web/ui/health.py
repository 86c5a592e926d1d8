"""Each connection's health as kubegate sees it: can it reach the API server with its own credentials,
is the server ready, which version is it. Probes are cached briefly so a page reload does not hammer
the clusters."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson

from kubegate.kube.status import Refused
from kubegate.upstream.connection import Connection

PROBE_TIMEOUT = 5.0
CACHE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Health:
    name: str
    server: str
    ok: bool
    detail: str
    version: str
    latency_ms: float
    checked_at: float


async def _get(conn: Connection, path: str) -> tuple[int, bytes]:
    async with conn.client.open("GET", path, "", identity=None, headers=[("Accept", "application/json")]) as response:
        return response.status, await response.content.read(65536)


async def probe(conn: Connection) -> Health:
    """/readyz and /version of one connection, as kubegate itself, through its upstream client."""
    started = time.monotonic()
    version = ""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            status, body = await _get(conn, "/readyz")
            ok = status == 200
            detail = "ready" if ok else f"/readyz answered {status}: {body[:200].decode(errors='replace').strip()}"
            if ok:
                status, body = await _get(conn, "/version")
                if status == 200:
                    version = str(orjson.loads(body).get("gitVersion", ""))
    except Refused as exc:
        ok, detail = False, exc.message
    except (TimeoutError, ValueError) as exc:
        ok, detail = False, f"unreachable: {exc.__class__.__name__}: {exc}"
    return Health(
        conn.name, conn.server, ok, detail, version, round((time.monotonic() - started) * 1000, 1), time.time()
    )


class HealthCache:
    def __init__(self) -> None:
        self._seen: dict[str, Health] = {}

    async def check(self, connections: dict[str, Connection]) -> list[Health]:
        now = time.time()
        stale = [
            c
            for name, c in sorted(connections.items())
            if name not in self._seen or now - self._seen[name].checked_at > CACHE_SECONDS
        ]
        for health in await asyncio.gather(*(probe(c) for c in stale)):
            self._seen[health.name] = health
        return [self._seen[name] for name in sorted(connections)]
