"""`/mcp` and its metadata routes, with the MCP SDK loaded on the first request to them.

The SDK (and what it pulls in) holds about 23 MB of a gateway's memory and takes half a second to import:
a gateway that serves kubectl only never pays either, and one that serves agents pays once, off the event
loop (the import runs in a thread). bench/README.md has the memory figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator, Collection
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from kubegate.app import Gateway
    from kubegate.mcp.endpoint import Endpoint
    from kubegate.mcp.workers import Workers

PATH = "/mcp"
METADATA = "/.well-known/oauth-protected-resource"


class LazyEndpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.workers: Workers | None = None
        """Set in a worker of `kubegate serve --workers N` (share_sessions): sessions are shared with the others."""
        self._endpoint: Endpoint | None = None
        self._lock = asyncio.Lock()
        self._running = contextlib.AsyncExitStack()

    async def endpoint(self) -> Endpoint:
        """The SDK-backed endpoint, built and its session manager started on first use."""
        async with self._lock:
            if self._endpoint is None:
                module = await asyncio.to_thread(importlib.import_module, "kubegate.mcp.endpoint")
                endpoint: Endpoint = module.Endpoint(self.gateway)
                endpoint.workers = self.workers
                await self._running.enter_async_context(endpoint.running())
                self._endpoint = endpoint
        return self._endpoint

    def live_sessions(self) -> Collection[str]:
        """The sessions this process holds: none before the SDK is loaded."""
        return self._endpoint.live_sessions() if self._endpoint is not None else ()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        return await (await self.endpoint()).handle(request)

    async def handle_metadata(self, request: web.Request) -> web.Response:
        return await (await self.endpoint()).handle_metadata(request)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the gateway runs; on the way out, stops the session manager if one was started."""
        try:
            yield
        finally:
            await self._running.aclose()


MCP = web.AppKey("mcp", LazyEndpoint)


def setup_routes(app: web.Application, gateway: Gateway) -> LazyEndpoint:
    endpoint = LazyEndpoint(gateway)
    app[MCP] = endpoint
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, PATH, endpoint.handle)
    app.router.add_get(METADATA, endpoint.handle_metadata)
    app.router.add_get(METADATA + PATH, endpoint.handle_metadata)
    return endpoint
