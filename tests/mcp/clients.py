"""The MCP SDK's own streamable-HTTP client, signed in with a token, against a gateway in front of the real cluster."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import World


def tls(world: World) -> ssl.SSLContext:
    assert world.env.gateway is not None and world.env.gateway.ca_file is not None
    return ssl.create_default_context(cafile=str(world.env.gateway.ca_file))


@asynccontextmanager
async def mcp_session(
    world: World, token: str, *, url: str | None = None, ca_file: Path | None = None
) -> AsyncIterator[ClientSession]:
    """An initialized session with the world's gateway, or the gateway at `url` (its CA in `ca_file`)."""
    assert world.env.gateway is not None
    verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else tls(world)
    http = httpx2.AsyncClient(
        verify=verify, headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=60)
    )
    async with (
        http,
        streamable_http_client((url or world.env.gateway.url) + "/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> tuple[bool, str]:
    """(is_error, the text the client reads) of one tool call."""
    result = await session.call_tool(tool, arguments)
    return bool(result.is_error), "".join(getattr(c, "text", "") for c in result.content)
