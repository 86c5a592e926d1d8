from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubegate.mcp.asgi import run_asgi


async def serve(app: Any, scope: dict[str, Any] | None = None) -> TestClient:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await run_asgi(app, request, scope)

    server = web.Application()
    server.router.add_route("*", "/mcp", handler)
    client = TestClient(TestServer(server, handler_cancellation=True))  # as kubegate serves
    await client.start_server()
    return client


async def test_the_body_goes_in_and_a_streamed_answer_comes_out_with_the_extra_scope() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)
        seen["body"] = (await receive())["body"]
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"one ", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})

    client = await serve(app, {"user": "u"})
    try:
        resp = await client.post("/mcp?x=1", data=b"hello", headers={"X-Thing": "y"})
        assert resp.status == 201 and await resp.text() == "one two"
    finally:
        await client.close()
    assert seen["body"] == b"hello" and seen["user"] == "u" and seen["query_string"] == b"x=1"
    assert (b"x-thing", b"y") in seen["headers"] and seen["method"] == "POST" and seen["path"] == "/mcp"


async def test_a_client_that_leaves_is_a_disconnect_the_app_sees_and_finishes_after() -> None:
    finished = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.body", "body": b"gone", "more_body": True})  # goes nowhere
        finished.set()

    client = await serve(app)
    try:
        resp = await client.get("/mcp")
        assert await resp.content.readline() == b"data: 1\n"
        resp.close()
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        await client.close()
