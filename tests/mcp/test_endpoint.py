"""/mcp end to end: the SDK's own streamable-HTTP client against the gateway in front of the real cluster."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
import yaml
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client

from kubegate.masking.marker import MARKER
from tests.conftest import World

pytestmark = pytest.mark.e2e


def _tls(world: World) -> ssl.SSLContext:
    assert world.env.gateway is not None and world.env.gateway.ca_file is not None
    return ssl.create_default_context(cafile=str(world.env.gateway.ca_file))


@asynccontextmanager
async def mcp_session(world: World, token: str) -> AsyncIterator[ClientSession]:
    assert world.env.gateway is not None
    http = httpx2.AsyncClient(verify=_tls(world), headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx2.Timeout(30, read=60))
    async with http, streamable_http_client(world.env.gateway.url + "/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> tuple[bool, str]:
    result = await session.call_tool(tool, arguments)
    return bool(result.is_error), "".join(getattr(c, "text", "") for c in result.content)


def http_get(world: World, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    assert world.env.gateway is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(world.env.gateway.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, context=_tls(world), timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_without_a_token_the_endpoint_answers_401_naming_its_metadata(world: World) -> None:
    status, headers, body = http_get(world, "/mcp")
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and "kubegate refused the token" in json.loads(body)["error_description"]
    url = challenge.partition('resource_metadata="')[2].rstrip('"')
    assert world.env.gateway is not None and url == world.env.gateway.url + "/.well-known/oauth-protected-resource/mcp"
    status, _, body = http_get(world, url.removeprefix(world.env.gateway.url))
    metadata = json.loads(body)
    assert status == 200 and metadata["resource"] == world.env.gateway.url + "/mcp"
    assert metadata["authorization_servers"] == [world.env.issuer.url]
    assert http_get(world, "/mcp", token="not-a-jwt")[0] == 401


async def test_get_masks_a_secret_and_lists_with_selectors(world: World) -> None:
    ns = world.namespace("mcp")
    world.kubectl("create", "secret", "generic", "db", "-n", ns, "--from-literal=password=hunter2-mcp")
    world.kubectl("create", "configmap", "a", "-n", ns)
    world.kubectl("label", "configmap", "a", "-n", ns, "tier=web")
    world.kubectl("create", "configmap", "b", "-n", ns)
    async with mcp_session(world, world.token()) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert {"list_api_resources", "get", "apply", "delete", "scale", "pod_logs", "describe"} <= tools
        error, text = await call(session, "get", resource="secret", name="db", namespace=ns)
        assert not error and "hunter2" not in text
        assert yaml.safe_load(text.split("\n", 1)[1] if text.startswith("warning") else text)["data"] == {
            "password": __import__("base64").b64encode(MARKER.encode()).decode()}
        error, text = await call(session, "get", resource="cm", namespace=ns, label_selector="tier=web")
        assert not error and "name: a\n" in text and "name: b\n" not in text and "managedFields" not in text
