"""The admin API handlers (kubegate/web/sessions_api.py) over a store filled through the recorder stage."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import create_async_engine

from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.recording.recorder import Recorder
from kubegate.recording.stage import RecorderStage
from kubegate.store.engine import Store, normalize_url
from kubegate.web.sessions_api import parse_time, setup_routes
from tests.recording.conftest import ALICE, FlowFactory

BOB = Identity(issuer="https://idp.example", subject="bob", username="idp#bob", groups=("sre",))
AUDITOR = Identity(issuer="https://idp.example", subject="carol", username="idp#carol", groups=("auditors",))


async def fake_authorize(request: web.Request, roles: set[str]) -> Identity:
    assert roles == {"auditor", "admin"}
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token == "auditor":
        return AUDITOR
    if not token:
        raise Refused(401, "no token", reason="Unauthorized")
    raise Refused(403, "needs auditor", reason="Forbidden")


async def fill(recorder: Recorder, make_flow: FlowFactory) -> dict[str, str]:
    """alice lists pods (ok), bob is denied deleting a namespace, alice watches in kube-system."""
    stage = RecorderStage(recorder)
    ids = {}
    flow = make_flow(session="k-get", command="kubectl get")
    await stage.on_request(flow)
    flow.response_status = 200
    await stage.on_response(flow)
    await stage.on_chunk(flow, b'{"items":[]}')
    await stage.on_end(flow)
    ids["get"] = flow.session_id
    denied = make_flow(
        "DELETE", "/api/v1/namespaces/prod", identity=BOB, session="k-del", command="kubectl delete", connection="prod"
    )
    denied.refusal = Refused(403, "policy denies it", reason="Forbidden")
    await stage.on_end(denied)
    watch = make_flow(
        "GET", "/api/v1/namespaces/kube-system/pods", "watch=true", session="k-watch", command="kubectl get"
    )
    await stage.on_request(watch)
    watch.response_status = 200
    await stage.on_response(watch)
    for i in range(3):
        await stage.on_chunk(watch, b'{"type":"ADDED","n":%d}\n' % i)
    await stage.on_end(watch)
    ids["watch"] = watch.session_id
    await recorder.flush()
    ids["delete"] = recorder.session_for(denied)
    return ids


@pytest.fixture
async def api(recorder: Recorder, store: Store, make_flow: FlowFactory) -> AsyncIterator[tuple[TestClient, dict]]:
    ids = await fill(recorder, make_flow)
    app = web.Application()
    setup_routes(app, lambda: store, fake_authorize)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, ids
    await client.close()


H = {"Authorization": "Bearer auditor"}


async def _get(client: TestClient, path: str, **params: str) -> tuple[int, dict]:
    resp = await client.get(path, params=params, headers=H)
    return resp.status, orjson.loads(await resp.read())


async def test_only_auditors_and_admins_read(api: tuple[TestClient, dict]) -> None:
    client, _ = api
    resp = await client.get("/api/v1/sessions")
    assert resp.status == 401 and (await resp.json())["kind"] == "Status"
    resp = await client.get("/api/v1/sessions", headers={"Authorization": "Bearer developer"})
    assert resp.status == 403 and (await resp.json())["reason"] == "Forbidden"


async def test_list_filters(api: tuple[TestClient, dict]) -> None:
    client, ids = api

    async def found(**params: str) -> list[str]:
        status, body = await _get(client, "/api/v1/sessions", **params)
        assert status == 200, body
        return [s["id"] for s in body["items"]]

    assert await found() == [ids["watch"], ids["delete"], ids["get"]]  # newest first
    assert await found(user=BOB.username) == [ids["delete"]]
    assert await found(user=ALICE.subject) == [ids["watch"], ids["get"]]
    assert await found(group="sre") == [ids["delete"]]
    assert await found(connection="prod") == [ids["delete"]]
    assert await found(verb="watch") == [ids["watch"]]
    assert await found(verb="delete", resource="namespaces") == [ids["delete"]]
    assert await found(namespace="kube-system") == [ids["watch"]]
    assert await found(command="delete") == [ids["delete"]]
    assert await found(command="%") == []  # LIKE wildcards are text, not patterns
    assert await found(outcome="denied") == [ids["delete"]]
    assert await found(since="1h") == [ids["watch"], ids["delete"], ids["get"]]
    assert await found(until="2000-01-01T00:00:00Z") == []
    assert await found(via="mcp") == []  # none of these came through MCP (tests/mcp has those that did)


async def test_list_pages_with_continue_tokens(api: tuple[TestClient, dict]) -> None:
    client, ids = api
    seen, token = [], ""
    for _ in range(3):
        status, body = await _get(client, "/api/v1/sessions", limit="1", **({"continue": token} if token else {}))
        assert status == 200
        seen += [s["id"] for s in body["items"]]
        token = body["metadata"]["continue"]
    assert seen == [ids["watch"], ids["delete"], ids["get"]] and token == ""
    for bad in (
        {"continue": "garbage"},
        {"limit": "0"},
        {"limit": "x"},
        {"colour": "red"},
        {"since": "soon"},
        {"outcome": "bogus"},
        {"via": "kubectl"},
    ):
        status, body = await _get(client, "/api/v1/sessions", **bad)
        assert status == 400 and body["reason"] == "BadRequest", bad


async def test_session_events_and_export(api: tuple[TestClient, dict]) -> None:
    client, ids = api
    status, session = await _get(client, f"/api/v1/sessions/{ids['watch']}")
    assert status == 200
    assert (session["username"], session["claims"]["run_id"], session["requests"]) == (ALICE.username, "42", 1)
    first, token, types = True, "", []
    while first or token:
        first = False
        _, page = await _get(
            client, f"/api/v1/sessions/{ids['watch']}/events", limit="2", **({"continue": token} if token else {})
        )
        types += [e["type"] for e in page["items"]]
        token = page["metadata"]["continue"]
    assert types == ["session", "request", "response", "chunk", "chunk", "chunk", "end"]
    resp = await client.get(f"/api/v1/sessions/{ids['get']}/export", params={"format": "jsonl"}, headers=H)
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    lines = [orjson.loads(line) for line in (await resp.read()).splitlines()]
    assert [x["kind"] for x in lines] == ["session", "event", "event", "event"]
    assert lines[0]["id"] == ids["get"] and lines[3]["data"]["body"] == '{"items":[]}'
    for path in (
        f"/api/v1/sessions/{'0' * 32}",
        f"/api/v1/sessions/{'0' * 32}/events",
        f"/api/v1/sessions/{'0' * 32}/export",
    ):
        status, body = await _get(client, path)
        assert status == 404 and "does not exist" in body["message"]
    status, _ = await _get(client, f"/api/v1/sessions/{ids['get']}/export", format="csv")
    assert status == 400


async def test_an_unusable_store_is_a_503() -> None:
    broken = Store(
        create_async_engine(normalize_url("postgresql://x@127.0.0.1:1/x"), connect_args={"timeout": 2}),
        normalize_url("postgresql://x@127.0.0.1:1/x"),
    )
    app = web.Application()
    setup_routes(app, lambda: broken, fake_authorize)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/v1/sessions", headers=H)
        assert resp.status == 503
        assert "session store is unavailable" in (await resp.json())["message"]
    await broken.close()


def test_times_are_rfc3339_unix_seconds_or_durations_ago() -> None:
    assert parse_time("2h", now=10_000.0) == 2800.0
    assert parse_time("1700000000") == 1_700_000_000.0
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000.0


async def test_each_session_says_what_its_first_request_asked_for(api: tuple[TestClient, dict]) -> None:
    client, ids = api
    _, body = await _get(client, "/api/v1/sessions")
    targets = {s["id"]: s["target"] for s in body["items"]}
    assert targets[ids["delete"]] == {
        "verb": "delete",
        "resource": "namespaces",
        "subresource": "",
        "namespace": "prod",
        "name": "prod",
        "path": "/api/v1/namespaces/prod",
    }
    assert (targets[ids["watch"]]["verb"], targets[ids["watch"]]["namespace"]) == ("watch", "kube-system")
    _, one = await _get(client, f"/api/v1/sessions/{ids['get']}")
    assert (one["target"]["verb"], one["target"]["resource"]) == ("list", "pods")
