"""Runs one aiohttp request through an ASGI app: the MCP SDK's transport is ASGI, kubegate's server is aiohttp.

Only what Streamable HTTP needs: one request body, a streamed response (SSE), and a disconnect. aiohttp
cancels a handler whose client went away (handler_cancellation); the app is shielded from that and told
`http.disconnect` instead, so it always finishes its own bookkeeping (the SDK registers a new session only
once the opening request's app call returns, which can be after the client already read the answer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def _scope(request: web.Request) -> dict[str, Any]:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.partition("?")[0].encode(),
        "query_string": request.query_string.encode(),
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": None,
    }


async def run_asgi(app: ASGIApp, request: web.Request, scope: dict[str, Any] | None = None) -> web.StreamResponse:
    """The app's answer to `request`, streamed as it comes; `scope` adds to the ASGI scope (the user)."""
    body = await request.read()
    done = asyncio.Event()
    sent_body = False
    response: web.StreamResponse | None = None

    async def receive() -> Message:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            headers = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", []))
            response = web.StreamResponse(status=message["status"], headers=headers)
        elif message["type"] == "http.response.body" and response is not None and not done.is_set():
            try:
                if not response.prepared:
                    await response.prepare(request)
                if message.get("body"):
                    await response.write(message["body"])
                if not message.get("more_body", False):
                    await response.write_eof()
                    done.set()
            except ConnectionResetError:  # the client left: what the app still sends goes nowhere, as in ASGI
                done.set()

    task = asyncio.ensure_future(app({**_scope(request), **(scope or {})}, receive, send))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        done.set()
        with contextlib.suppress(Exception):
            await task
        raise
    finally:
        done.set()
    if response is None:
        return web.Response(status=500, text="kubegate: the MCP transport gave no answer")
    if not response.prepared:
        await response.prepare(request)
        await response.write_eof()
    return response
