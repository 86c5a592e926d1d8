"""`kubegate requests ...` against the approvals admin API served over HTTPS from a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from aiohttp import web
from typer.testing import CliRunner

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.service import ApprovalService
from kubegate.cli import requests as requests_cli
from kubegate.identity.config import IdentityConfig
from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.store.engine import Store
from kubegate.tls import ensure_serving_cert, server_ssl_context
from kubegate.web.approvals_api import setup_routes
from kubegate.web.auth import roles_of
from tests.approvals.builders import AGENT, BOB, CAROL, approval_stage, engine, make_flow

TOKENS = {"agent-token": AGENT, "bob-token": BOB, "carol-token": CAROL}


async def _authorize(request: web.Request, roles: set[str]) -> Identity:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token not in TOKENS:
        raise Refused(401, "kubegate refused the token: it has expired", reason="Unauthorized")
    return TOKENS[token]


@dataclass
class Served:
    url: str
    ca: Path
    loop: asyncio.AbstractEventLoop
    service: ApprovalService

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def ask(self, method: str = "GET", path: str = "/api/v1/namespaces/prod/pods") -> str:
        async def refused() -> str:
            try:
                await approval_stage(self.service).on_request(make_flow(method, path))
            except Refused as exc:
                assert exc.details is not None
                return str(exc.details["name"])
            raise AssertionError("the async rule did not refuse")

        return str(self.call(refused()))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("requests-cli")
    certs = ensure_serving_cert(tmp / "tls", ["127.0.0.1"])
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}

    async def start() -> None:
        store = await Store.open(f"sqlite:///{tmp / 'kubegate.db'}")
        service = ApprovalService(store, None, engine(), ApprovalsConfig(), connections=("dev",))
        app = web.Application()
        runner = web.AppRunner(app)
        setup_routes(
            app,
            lambda: service,
            _authorize,
            lambda i: roles_of(i, IdentityConfig(), service.is_reviewer),
            lambda: f"https://127.0.0.1:{runner.addresses[0][1]}",
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs.cert, certs.key))
        await site.start()
        ready.update(runner=runner, store=store, service=service, port=runner.addresses[0][1])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    yield Served(f"https://127.0.0.1:{ready['port']}", certs.ca, loop, ready["service"])

    async def stop() -> None:
        await ready["runner"].cleanup()
        await ready["service"].close()
        await ready["store"].close()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def run(served: Served, *args: str, token: str = "bob-token") -> tuple[int, str]:
    app = typer.Typer()
    requests_cli.register(app)
    env = {"KUBEGATE_SERVER": served.url, "KUBEGATE_CA": str(served.ca), "KUBEGATE_TOKEN": token}
    result = CliRunner().invoke(app, ["requests", *args], env=env)
    return result.exit_code, result.output


def test_list_show_and_approve(served: Served) -> None:
    request_id = served.ask()
    code, out = run(served, "list")
    assert code == 0, out
    assert request_id in out and "gh#repo:acme/app asks to list pods in namespace prod" in out
    code, out = run(served, "show", request_id)
    assert code == 0, out
    assert f"Request:     {request_id}" in out and "Claims:      actor=alice, repository=acme/app, run_id=42" in out
    assert "HTTP:        GET /api/v1/namespaces/prod/pods" in out
    assert "Waiting for: rule prod-reads-need-approval needs 1 more approval(s) from platform-oncall" in out
    code, out = run(served, "approve", request_id, "--comment", "incident 4711")
    assert code == 0 and f"access request {request_id} approved" in out
    code, out = run(served, "show", request_id, "-o", "json")
    shown = orjson.loads(out)
    assert shown["state"] == "approved" and shown["approvals"][0]["comment"] == "incident 4711"


def test_the_requester_cannot_approve_and_deny_needs_a_reason(served: Served) -> None:
    request_id = served.ask("GET", "/api/v1/namespaces/prod/configmaps")
    code, out = run(served, "approve", request_id, token="agent-token")
    assert code == 1 and "kubegate answered 403" in out and "nobody reviews their own request" in out
    code, out = run(served, "deny", request_id)
    assert code == 2 and "--reason" in out
    code, out = run(served, "deny", request_id, "--reason", "use staging", token="carol-token")
    assert code == 0 and f"access request {request_id} denied" in out
    code, out = run(served, "list", "--state", "denied", "-o", "json")
    assert [r["decision_reason"] for r in orjson.loads(out)["items"]] == ["use staging"]


def test_create_a_scope_request_and_revoke_it(served: Served) -> None:
    code, out = run(
        served,
        "create",
        "--connection",
        "dev",
        "--namespace",
        "prod",
        "--verbs",
        "get,list",
        "--resources",
        "pods,pods/log",
        "--duration",
        "1h",
        "--reason",
        "incident 4711",
        token="agent-token",
    )
    assert code == 0, out
    request_id = out.split()[2]
    assert "asks for get,list on pods,pods/log in namespace prod for 1h on connection dev" in out
    assert f"kubegate requests approve {request_id} --server https://127.0.0.1:" in out
    code, out = run(served, "revoke", request_id, "--reason", "not needed", token="agent-token")
    assert code == 0 and f"access request {request_id} revoked" in out
    code, out = run(
        served,
        "create",
        "--connection",
        "dev",
        "--namespace",
        "kube-system",
        "--verbs",
        "delete",
        "--resources",
        "pods",
        "--reason",
        "x",
        token="agent-token",
    )
    assert code == 1 and "the policy denies delete pods" in out


def test_tokens_and_servers_are_checked(served: Served) -> None:
    code, out = run(served, "list", token="stale")
    assert code == 1 and "kubegate answered 401: kubegate refused the token: it has expired" in out
    code, out = run(served, "list", token="")
    assert code == 2 and "no token" in out
    app = typer.Typer()
    requests_cli.register(app)
    result = CliRunner().invoke(app, ["requests", "list", "--server", "https://127.0.0.1:1", "--token", "x"])
    assert result.exit_code == 1 and "cannot reach kubegate at https://127.0.0.1:1" in result.output
