"""`/mcp` (Streamable HTTP, served by the MCP SDK's session manager) and its OAuth protected-resource metadata.

kubegate is an OAuth resource server here, as MCP's authorization spec has it: each HTTP request's bearer
token is verified by the same verifier kubectl's requests meet (issuer, audience, expiry), a missing or bad
token gets 401 with `WWW-Authenticate` naming the metadata URL, and an MCP session belongs to the user who
opened it: the verified identity goes to the SDK as its authenticated user, and the SDK's session manager
answers another principal's request for that session as if the session did not exist. Under
`kubegate serve --workers N`, a request for a session another worker holds is passed to that worker, which
handles it as any other (kubegate.mcp.workers).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl

from kubegate.identity.model import AuthError
from kubegate.identity.stage import bearer_token
from kubegate.mcp.asgi import Message, run_asgi
from kubegate.mcp.routes import PATH
from kubegate.mcp.tools import Tools, build_server
from kubegate.mcp.workers import Workers, came_from_a_worker

if TYPE_CHECKING:
    from kubegate.app import Gateway

HINT = "send `Authorization: Bearer <token>` with a token from one of kubegate's issuers (see the metadata URL)"


class Endpoint:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.tools = Tools(gateway, lambda: gateway.loopback)
        server = build_server(self.tools)
        # Only for its session manager: routing, auth and TLS are kubegate's; the bearer token, not the
        # Host header, is what keeps other sites' pages out (no DNS-rebinding allow-list needed).
        server.streamable_http_app(transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.manager: StreamableHTTPSessionManager = server.session_manager
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.workers: Workers | None = None
        """Set in a worker of `kubegate serve --workers N` (share_sessions): sessions are shared with the others."""

    def resource_url(self) -> str:
        return self.gateway.base_url + PATH

    def metadata(self) -> ProtectedResourceMetadata:
        # Strings, so the model keeps each issuer exactly as configured (issuer ids compare as strings).
        return ProtectedResourceMetadata.model_validate(
            {
                "resource": self.resource_url(),
                "resource_name": "kubegate",
                "authorization_servers": [i.url for i in self.gateway.config.identity.issuers],
            }
        )

    def unauthorized(self, why: str, sent_token: bool) -> web.Response:
        """RFC 6750 and 9728: the challenge names the metadata; an error code only when a token was sent."""
        url = build_resource_metadata_url(AnyHttpUrl(self.resource_url()))
        description = f"kubegate refused the token: {why}; {HINT}"
        quoted = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in description)
        header = (
            f'Bearer error="invalid_token", error_description="{quoted}", resource_metadata="{url}"'
            if sent_token
            else f'Bearer resource_metadata="{url}"'
        )
        return web.Response(
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": header},
            body=orjson.dumps({"error": "invalid_token", "error_description": description}),
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            identity = await self.gateway.verifier.verify(bearer_token(request.headers.get("Authorization")))
        except AuthError as exc:
            return self.unauthorized(exc.reason, "Authorization" in request.headers)
        # The SDK keys session ownership on (client_id, iss, sub); it never needs the token itself.
        user = AuthenticatedUser(
            AccessToken(
                token="",
                client_id=identity.username,
                scopes=[],
                expires_at=int(identity.expires_at) or None,
                subject=identity.subject,
                claims={"iss": identity.issuer},
            )
        )
        session_id = request.headers.get("Mcp-Session-Id")
        if self.workers is not None and session_id and not came_from_a_worker(request):
            owner = self.workers.owner(session_id)
            if owner is not None and owner != self.workers.name:
                forwarded = await self.workers.forward(request, owner)
                if forwarded is not None:
                    return forwarded
        app = self.manager.handle_request if self.workers is None or session_id else self._claiming
        return await run_asgi(app, request, {"user": user})

    async def _claiming(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """A request that opens a session: its owner is recorded before the client can learn the id."""

        async def claim(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400 and self.workers is not None:
                for key, value in message.get("headers", []):
                    if key.lower() == b"mcp-session-id":
                        self.workers.claim(value.decode("latin-1"))
            await send(message)

        await self.manager.handle_request(scope, receive, claim)

    def live_sessions(self) -> Collection[str]:
        """The ids of the sessions the SDK holds now (it has no public list of them)."""
        return self.manager._server_instances.keys()

    async def handle_metadata(self, request: web.Request) -> web.Response:
        return web.Response(content_type="application/json", body=self.metadata().model_dump_json(exclude_none=True))

    async def _serve(self, started: asyncio.Event) -> None:
        async with self.manager.run():
            started.set()
            await self._stop.wait()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's task group lives in its own task (anyio scopes must enter and exit in one);
        requests are handed to it only once it runs: the first one may come at once (the SDK loads lazily)."""
        started = asyncio.Event()
        self._task = asyncio.create_task(self._serve(started), name="mcp-sessions")
        waiting = asyncio.ensure_future(started.wait())
        await asyncio.wait({self._task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if self._task.done():
            self._task.result()  # it failed to start: say why
        try:
            yield
        finally:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 10)
