"""A UI app over plain HTTP with a real approval service and store, and sign-ins made by sealing
session cookies directly (the OIDC flow itself is tested in test_auth.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.service import ApprovalService
from kubegate.config import Config, UIConfig
from kubegate.identity.config import IdentityConfig
from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.policy.engine import PolicyEngine
from kubegate.store.engine import Store
from kubegate.upstream.connection import Connection
from kubegate.web.ui import build_ui
from kubegate.web.ui.cookies import SESSION_COOKIE, UISession
from kubegate.web.ui.pages import UI
from tests.approvals.builders import approval_stage, engine, make_flow

ADMIN = Identity(issuer="https://idp.example", subject="root", username="idp#root", groups=("kubegate-admins",))
AUDITOR = Identity(issuer="https://idp.example", subject="aud", username="idp#aud", groups=("auditors",))


@dataclass(eq=False)
class StandInGateway:
    """The parts of kubegate.app.Gateway the UI reads."""

    store: Store
    approvals: ApprovalService
    policy: PolicyEngine
    verifier: Any = None
    connections: dict[str, Connection] = field(default_factory=dict)
    base_url: str = "https://kubegate.example.com"


@dataclass
class UIHarness:
    client: TestClient[web.Request, web.Application]
    service: ApprovalService
    app: web.Application
    store: Store

    def sign_in(self, identity: Identity) -> dict[str, str]:
        """Headers of a browser signed in as `identity`."""
        state = self.app[UI]
        session = state.codec.new_session(identity)
        response = web.Response()
        state.codec.set_session(response, session)
        return {"Cookie": f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE].value}"}

    def session_of(self, headers: dict[str, str]) -> UISession:
        from aiohttp.test_utils import make_mocked_request

        found = self.app[UI].codec.session(make_mocked_request("GET", "/", headers=headers))
        assert found is not None
        return found

    async def ask(self, path: str = "/api/v1/namespaces/prod/pods", **flow: Any) -> str:
        """An async-mode access request (prod reads need platform-oncall), as the pipeline makes it."""
        with pytest.raises(Refused) as refused:
            await approval_stage(self.service).on_request(make_flow("GET", path, **flow))
        assert refused.value.details is not None
        return str(refused.value.details["name"])

    async def page(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, str]:
        response = await self.client.get(path, headers=headers or {}, allow_redirects=False, **kwargs)
        return response.status, await response.text()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


@pytest.fixture
async def ui(tmp_path: Path) -> AsyncIterator[UIHarness]:
    store = await Store.open(f"sqlite:///{tmp_path / 'kubegate.db'}")
    policy = engine()
    service = ApprovalService(store, None, policy, ApprovalsConfig(), connections=("dev",))
    vendor = tmp_path / "node_modules"
    config = Config(
        state_dir=tmp_path / "state",
        ui=UIConfig(vendor_dir=vendor),
        identity=IdentityConfig(admin_groups=["kubegate-admins"], auditor_groups=["auditors"]),
    )
    gateway = StandInGateway(store=store, approvals=service, policy=policy)
    root = web.Application()
    ui_app = build_ui(gateway, config, secure_cookies=False)  # type: ignore[arg-type]
    root.add_subapp("/ui", ui_app)
    client = TestClient(TestServer(root))
    await client.start_server()
    yield UIHarness(client, service, ui_app, store)
    await client.close()
    await service.close()
    await store.close()
