"""The access request admin API: who sees which request, decisions, scope requests, and refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.service import ApprovalService
from kubegate.identity.config import IdentityConfig
from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.store.engine import Store
from kubegate.web.approvals_api import setup_routes
from kubegate.web.auth import roles_of
from tests.approvals.builders import AGENT, BOB, CAROL, DAVE, approval_stage, engine, make_flow

ADMIN = Identity(issuer="https://idp.example", subject="root", username="idp#root", groups=("kubegate-admins",))
AUDITOR = Identity(issuer="https://idp.example", subject="aud", username="idp#aud", groups=("auditors",))
TOKENS = {"agent": AGENT, "bob": BOB, "carol": CAROL, "dave": DAVE, "admin": ADMIN, "auditor": AUDITOR}
IDENTITY = IdentityConfig(admin_groups=["kubegate-admins"], auditor_groups=["auditors"])


async def authorize(request: web.Request, roles: set[str]) -> Identity:
    assert roles == set()  # any verified identity; the API decides per request
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token not in TOKENS:
        raise Refused(401, "kubegate refused the token: it has expired", reason="Unauthorized")
    return TOKENS[token]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], ApprovalService]]:
    store = await Store.open(f"sqlite:///{tmp_path / 'kubegate.db'}")
    service = ApprovalService(store, None, engine(), ApprovalsConfig(), connections=("dev",))
    app = web.Application()
    setup_routes(
        app,
        lambda: service,
        authorize,
        lambda i: roles_of(i, IDENTITY, service.is_reviewer),
        lambda: "https://kubegate.example.com",
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, service
    await client.close()
    await service.close()
    await store.close()


Api = tuple[TestClient[web.Request, web.Application], ApprovalService]


async def _ask(service: ApprovalService, path: str = "/api/v1/namespaces/prod/pods") -> str:
    with pytest.raises(Refused) as refused:
        await approval_stage(service).on_request(make_flow("GET", path))
    assert refused.value.details is not None
    return str(refused.value.details["name"])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_requesters_and_reviewers_see_their_requests_others_do_not(api: Api) -> None:
    client, service = api
    request_id = await _ask(service)
    for token in ("agent", "bob", "admin", "auditor"):
        listed = await (await client.get("/api/v1/requests", headers=_auth(token))).json()
        assert [r["id"] for r in listed["items"]] == [request_id], token
    listed = await (await client.get("/api/v1/requests", headers=_auth("dave"))).json()
    assert listed["items"] == []
    hidden = await client.get(f"/api/v1/requests/{request_id}", headers=_auth("dave"))
    assert hidden.status == 404
    shown = await (await client.get(f"/api/v1/requests/{request_id}", headers=_auth("bob"))).json()
    assert shown["requester"]["claims"] == {"repository": "acme/app", "run_id": "42", "actor": "alice"}
    assert shown["request"]["info"]["namespace"] == "prod" and shown["request"]["body_sha256"]
    assert shown["reviewers"] == {"groups": ["platform-oncall"], "users": []}


async def test_approve_deny_and_revoke_through_the_api(api: Api) -> None:
    client, service = api
    first, second = await _ask(service), await _ask(service, "/api/v1/namespaces/prod/services")
    own = await client.post(f"/api/v1/requests/{first}/approve", headers=_auth("agent"), json={})
    assert own.status == 403 and "nobody reviews their own request" in (await own.json())["message"]
    admin = await client.post(f"/api/v1/requests/{first}/approve", headers=_auth("admin"), json={})
    assert admin.status == 403  # admins see everything but approve only what the policy lets them review
    approved = await client.post(f"/api/v1/requests/{first}/approve", headers=_auth("bob"), json={"comment": "ok"})
    assert approved.status == 200 and (await approved.json())["state"] == "approved"
    no_reason = await client.post(f"/api/v1/requests/{second}/deny", headers=_auth("bob"), json={})
    assert no_reason.status == 400
    denied = await (
        await client.post(f"/api/v1/requests/{second}/deny", headers=_auth("bob"), json={"reason": "use staging"})
    ).json()
    assert (denied["state"], denied["decision_reason"]) == ("denied", "use staging")
    revoked = await client.post(f"/api/v1/requests/{first}/revoke", headers=_auth("admin"), json={"reason": "x"})
    assert revoked.status == 200 and (await revoked.json())["grant"]["state"] == "revoked"
    states = await (await client.get("/api/v1/requests?state=all", headers=_auth("auditor"))).json()
    assert sorted(r["state"] for r in states["items"]) == ["denied", "revoked"]


async def test_a_scope_request_through_the_api(api: Api) -> None:
    client, _ = api
    created = await client.post(
        "/api/v1/requests",
        headers={**_auth("agent"), "Host": "attacker.example"},
        json={
            "connection": "dev",
            "namespace": "prod",
            "verbs": "get,list",
            "resources": "pods,pods/log",
            "duration": "1h",
            "reason": "incident 4711",
        },
    )
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["kind"] == "scope" and body["scope"] == {
        "namespace": "prod",
        "verbs": ["get", "list"],
        "resources": ["pods", "pods/log"],
        "duration": 3600.0,
    }
    assert body["approve_command"] == f"kubegate requests approve {body['id']} --server https://kubegate.example.com"
    assert "attacker.example" not in await created.text()  # the configured base URL, never the Host header
    bad = await client.post(
        "/api/v1/requests",
        headers=_auth("agent"),
        json={"connection": "dev", "namespace": "prod", "verbs": "get", "resources": "pods/", "reason": "x"},
    )
    assert bad.status == 400 and "RESOURCE" in (await bad.json())["message"]


async def test_refusals_are_statuses(api: Api) -> None:
    client, _ = api
    unauthenticated = await client.get("/api/v1/requests")
    assert unauthenticated.status == 401 and (await unauthenticated.json())["kind"] == "Status"
    bad_state = await client.get("/api/v1/requests?state=sleeping", headers=_auth("bob"))
    assert bad_state.status == 400
    missing = await client.post("/api/v1/requests/zzzzzzzz/approve", headers=_auth("bob"), json={})
    assert missing.status == 404
    not_json = await client.post(
        "/api/v1/requests", headers={**_auth("agent"), "Content-Type": "application/json"}, data=b"{nope"
    )
    assert not_json.status == 400


def test_the_reviewer_role_also_comes_from_the_policy() -> None:
    service = ApprovalService.__new__(ApprovalService)
    service.policy = engine()
    assert "reviewer" in roles_of(BOB, IDENTITY, service.is_reviewer)
    assert roles_of(DAVE, IDENTITY, service.is_reviewer) == set()
    assert roles_of(BOB, IDENTITY) == set()
