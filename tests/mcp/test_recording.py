"""An MCP session's recording: what of a tool call's arguments may be stored, then end to end, the SDK's own
client against the gateway on the real cluster and the recording read back the ways an auditor reads it (CLI,
replay, export, UI, verify), the store searched, and a store that cannot write."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from aiohttp import web
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent

from kubegate.config import MaskingConfig
from kubegate.identity.model import Identity
from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.masking.masker import Masker
from kubegate.mcp.loopback import Caller
from kubegate.mcp.recording import ToolCalls, masked_arguments
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store
from kubegate.store.tables import events
from kubegate.web.ui.cookies import SESSION_COOKIE
from kubegate.web.ui.pages import UI
from tests.approvals.builders import AGENT
from tests.conftest import World
from tests.e2e.gateways import GatewayProcess
from tests.e2e.test_no_secret_stored import store_bytes
from tests.mcp.clients import call, mcp_session, tls

E2E = pytest.mark.e2e


MASKER = Masker(MaskingConfig())


def test_a_manifest_is_stored_as_its_objects_masked_with_every_profile() -> None:
    manifest = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: aHVudGVyMg==}\nstringData: {p: hunter2}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n"
        "      containers: [{name: c, env: [{name: DB_PASSWORD, value: hunter3}, {name: MODE, value: blue}]}]\n"
    )
    stored = masked_arguments("apply", {"manifest": manifest, "namespace": "shop"}, MASKER, 10_000)
    secret, deployment = yaml.safe_load_all(stored["manifest"])
    assert secret["stringData"] == {"p": MARKER} and secret["data"] == {"k": MARKER_B64}
    [env] = [c["env"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert env == [{"name": "DB_PASSWORD", "value": MARKER}, {"name": "MODE", "value": "blue"}]
    assert stored["namespace"] == "shop"
    for unreadable in (
        "kind: Secret\nstringData: {p: hunter2: x}",
        "just hunter2",
        "- a\n- hunter2",
        "x: !!binary aGk=",
    ):
        assert masked_arguments("apply", {"manifest": unreadable}, MASKER, 10_000)["manifest"] == MARKER
    assert masked_arguments("get", {"manifest": "hunter2"}, MASKER, 10_000) == {"manifest": "hunter2"}  # not apply's


def test_a_long_argument_is_stored_cut() -> None:
    stored = masked_arguments("exec", {"command": ["sh", "-c", "x" * 50], "pod": "p"}, MASKER, 10)
    assert stored == {
        "command": ["sh", "-c", "x" * 10 + "\n[50 characters in all; the rest was not stored]"],
        "pod": "p",
    }


async def test_a_result_that_cannot_be_recorded_is_withheld(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'kubegate.db'}")
    recorder = Recorder(store)
    caller = Caller(token="t", session_id="s1", client="agent", command="mcp get resource=pods")
    ran = []

    async def run() -> CallToolResult:
        ran.append(True)
        await recorder.close()  # the recorder goes away while the call runs
        return CallToolResult(content=[TextContent(type="text", text="0 items")])

    try:
        with pytest.raises(ToolError, match="ran this tool call but cannot record its result, so it withholds"):
            await ToolCalls(recorder, MASKER).around(AGENT, caller, "dev", "", "get", {"resource": "pods"}, run)
        with pytest.raises(ToolError, match="cannot record this tool call, so it did not run it"):
            await ToolCalls(recorder, MASKER).around(AGENT, caller, "dev", "", "get", {"resource": "pods"}, run)
        assert ran == [True]
        async with store.read() as conn:
            recorded = (await conn.execute(sa.select(events.c.type).order_by(events.c.seq))).scalars().all()
        assert recorded == ["session", "tool_call"]  # the call was recorded before it ran; its result never went out
    finally:
        await store.close()


def events_of(world: World, user: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The one session `user` has, and its events, as `kubegate sessions show` gives them."""
    listed = json.loads(world.cli("sessions", "list", "--user", user, "--output", "json").stdout)["items"]
    assert len(listed) == 1, listed
    shown = json.loads(world.cli("sessions", "show", listed[0]["id"], "--output", "json").stdout)
    return shown["session"], shown["events"]


def ui_page(world: World, path: str) -> str:
    """A UI page as a signed-in auditor sees it (the cookie sealed by the gateway's own codec)."""
    assert world.env.gateway is not None
    [ui] = [
        r.get_info()["app"]
        for r in world.env.gateway.runner.app.router.resources()
        if r.get_info().get("prefix") == "/ui"
    ]
    auditor = Identity(issuer=world.env.issuer.url, subject="audrey", username="sandbox:audrey", groups=("auditors",))
    response = web.Response()
    ui[UI].codec.set_session(response, ui[UI].codec.new_session(auditor))
    cookie = f"{SESSION_COOKIE}={response.cookies[SESSION_COOKIE].value}"
    request = urllib.request.Request(world.env.gateway.url + path, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, context=tls(world), timeout=30) as answer:
        return str(answer.read().decode())


def audit_verify(world: World) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubegate", "audit", "verify", "--config", str(world.env.config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def immutable(path: Path, on: bool) -> None:
    """A store file the gateway cannot write (as root: chattr), or can again."""
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


def ready(gateway: GatewayProcess) -> int:
    with urllib.request.urlopen(gateway.url + "/readyz", context=gateway.ctx, timeout=10) as answer:
        return int(answer.status)


@E2E
async def test_each_tool_call_is_recorded_with_its_arguments_and_the_result_the_client_received(world: World) -> None:
    ns = world.namespace("mcprec")
    world.kubectl("create", "configmap", "cfg", "-n", ns, "--from-literal=mode=blue")
    user = f"rec-{uuid.uuid4().hex[:8]}"
    asked: list[tuple[str, dict[str, Any]]] = [
        ("get", {"resource": "configmaps", "name": "cfg", "namespace": ns}),
        ("get", {"resource": "configmaps", "name": "missing", "namespace": ns}),
        ("explain", {"kubectl": f"delete configmap cfg -n {ns}"}),
    ]
    received = []
    async with mcp_session(world, world.token(user)) as session:
        for tool, arguments in asked:
            received.append(await call(session, tool, **arguments))
    assert [error for error, _ in received] == [False, True, False] and "mode: blue" in received[0][1]
    world.settle()
    session, events = events_of(world, f"sandbox:{user}")
    assert session["via"] == "mcp" and session["command"].startswith("mcp get resource=configmaps name=cfg")
    calls = [e for e in events if e["type"] == "tool_call"]
    results = [e for e in events if e["type"] == "tool_result"]
    assert [(e["data"]["tool"], e["data"]["arguments"]) for e in calls] == asked
    assert [(e["data"]["error"], e["data"]["body"]) for e in results] == received  # exactly what the client read
    assert [r["data"]["call_seq"] for r in results] == [c["seq"] for c in calls]
    made = [
        [e["data"]["path"] for e in events if e["type"] == "request" and c["seq"] < e["seq"] < r["seq"]]
        for c, r in zip(calls, results, strict=True)
    ]
    assert made[0][-1] == f"/api/v1/namespaces/{ns}/configmaps/cfg"
    assert made[1] == [f"/api/v1/namespaces/{ns}/configmaps/missing"] and made[2] == []  # explain sends nothing

    shown = world.cli("sessions", "show", session["id"]).stdout
    assert "Via:        mcp" in shown and "tool_result" in shown
    assert f'MCP tool get {{"name":"missing","namespace":"{ns}","resource":"configmaps"}}' in shown
    assert "MCP tool get answered the client (error" in shown and "MCP tool explain answered" in shown
    replayed = world.cli("sessions", "replay", session["id"], "--idle-limit", "0").stdout
    assert f"mcp< get: result\n{received[0][1]}\n" in replayed and "mcp> explain " in replayed
    exported = [json.loads(line) for line in world.cli("sessions", "export", session["id"]).stdout.splitlines()]
    assert [e["type"] for e in exported if e.get("type", "").startswith("tool_")] == ["tool_call", "tool_result"] * 3

    listing = world.cli("sessions", "list", "--user", f"sandbox:{user}").stdout
    assert "VIA" in listing and any(session["id"] in line and " mcp " in line for line in listing.splitlines())
    only_mcp = json.loads(world.cli("sessions", "list", "--via", "mcp", "--limit", "1000", "--output", "json").stdout)
    assert session["id"] in {s["id"] for s in only_mcp["items"]} and {s["via"] for s in only_mcp["items"]} == {"mcp"}

    page = ui_page(world, f"/ui/sessions/{session['id']}")
    assert '<span class="badge via">mcp</span>' in page and "Tool calls" in page
    assert page.index(">explain</code>") > page.index(">get</code>")  # in the order they were called
    assert f"GET /api/v1/namespaces/{ns}/configmaps/missing" in page and "Result the client received" in page
    listed = ui_page(world, f"/ui/sessions?user=sandbox:{user}")
    assert '<span class="badge via">mcp</span>' in listed

    verified = audit_verify(world)
    assert verified.returncode == 0 and "audit chain OK" in verified.stdout, verified.stderr


@E2E
async def test_a_secret_in_apply_arguments_or_a_result_is_never_stored(world: World) -> None:
    ns = world.namespace("mcpleak")
    # Random and of no credential shape: only masking the manifest as objects can hide these.
    value, other, third = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    manifest = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": ns},
            "data": {"password": base64.b64encode(value.encode()).decode()},
            "stringData": {"token": other},
        }
    )
    user = f"leak-{uuid.uuid4().hex[:8]}"
    async with mcp_session(world, world.token(user)) as session:
        applied = await call(session, "apply", manifest=manifest)
        got = await call(session, "get", resource="secrets", name="db", namespace=ns)
        broken = await call(session, "apply", manifest=f"kind: Secret\nstringData:\n  token: {third}: x\n")
    assert not applied[0] and not got[0], (applied, got)
    assert broken[0] and "could not read the manifest as YAML" in broken[1] and third not in broken[1]
    secret = world.control.get(f"/api/v1/namespaces/{ns}/secrets/db")["data"]
    assert base64.b64decode(secret["password"]).decode() == value  # the cluster has it: masking hid, not dropped
    world.settle()
    _, events = events_of(world, f"sandbox:{user}")
    [recorded, unreadable] = [
        e["data"]["arguments"]["manifest"] for e in events if e["type"] == "tool_call" and e["data"]["tool"] == "apply"
    ]
    assert unreadable == MARKER
    assert yaml.safe_load(recorded)["stringData"] == {"token": MARKER} and recorded != manifest
    assert [e["data"]["body"] for e in events if e["type"] == "tool_result"] == [applied[1], got[1], broken[1]]
    stored = store_bytes(world)
    assert ns.encode() in stored, "the store holds this session: the search means something"
    for secret_value in (value, other, third):
        encoded = base64.b64encode(secret_value.encode())
        assert secret_value.encode() not in stored and encoded not in stored, secret_value
        assert secret_value not in applied[1] + got[1] + broken[1]


@pytest.fixture
def own_gateway(world: World, tmp_path: Path) -> Any:
    gw = GatewayProcess(world, tmp_path)
    try:
        yield gw
    finally:
        subprocess.run(["chattr", "-i", str(gw.db)], check=False)
        gw.stop()


@E2E
async def test_a_tool_call_the_recorder_cannot_record_does_not_run(world: World, own_gateway: GatewayProcess) -> None:
    marker = uuid.uuid4().hex[:12]
    token = world.token(f"ro-{marker}")
    async with mcp_session(world, token, url=own_gateway.url, ca_file=own_gateway.ca_file) as session:
        error, _ = await call(session, "get", resource="configmaps", namespace="default")
        assert not error  # discovery and the first session are recorded while the store writes
        mark = world.control.audit_mark()
        immutable(own_gateway.db, True)
        try:
            error, text = await call(
                session, "get", resource="configmaps", namespace="default", label_selector=f"m={marker}"
            )
        finally:
            immutable(own_gateway.db, False)
    assert error and text.startswith("kubegate cannot record this tool call, so it did not run it: "), text
    assert not world.reached(marker, mark)
    assert ready(own_gateway) == 200  # the store writes again
