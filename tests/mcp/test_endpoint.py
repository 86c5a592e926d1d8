"""/mcp end to end: the SDK's own streamable-HTTP client against the gateway in front of the real cluster."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import pytest
import yaml

from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.sandbox.envtest import GATEWAY_USER
from tests.conftest import World
from tests.mcp.clients import call, mcp_session, tls

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).parents[2] / "examples/policies"
DISCOVERY = yaml.safe_load((EXAMPLES / "00-discovery.yaml").read_text())["policies"][0]


def http_get(world: World, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    assert world.env.gateway is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(world.env.gateway.url + path, headers=headers)
    try:
        with urllib.request.urlopen(req, context=tls(world), timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_without_a_token_the_endpoint_answers_401_naming_its_metadata(world: World) -> None:
    status, headers, body = http_get(world, "/mcp")
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and "kubegate refused the token" in json.loads(body)["error_description"]
    url = challenge.partition('resource_metadata="')[2].removesuffix('"')
    assert world.env.gateway is not None and url == world.env.gateway.url + "/.well-known/oauth-protected-resource/mcp"
    status, _, body = http_get(world, url.removeprefix(world.env.gateway.url))
    metadata = json.loads(body)
    assert status == 200 and metadata["resource"] == world.env.gateway.url + "/mcp"
    assert metadata["authorization_servers"] == [world.env.issuer.url]
    assert challenge == f'Bearer resource_metadata="{url}"'  # no token sent: no error code (RFC 6750)
    status, headers, _ = http_get(world, "/mcp", token="not-a-jwt")
    assert (
        status == 401
        and 'error="invalid_token", error_description="kubegate refused the token: ' in headers["WWW-Authenticate"]
        and headers["WWW-Authenticate"].endswith(f'resource_metadata="{url}"')
    )


async def test_a_session_belongs_to_the_user_who_opened_it(world: World) -> None:
    assert world.env.gateway is not None
    url = world.env.gateway.url + "/mcp"
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    opening = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx2.AsyncClient(verify=tls(world), timeout=30) as http:
        opened = await http.post(url, json=opening, headers={**accept, "Authorization": f"Bearer {world.token('pia')}"})
        assert opened.status_code == 200 and opened.headers["mcp-session-id"]
        assert opened.headers["content-type"].startswith("text/event-stream")  # answers come as SSE
        assert '"protocolVersion":"2025-11-25"' in opened.text.replace(" ", "")
        for asked, agreed in (("2025-03-26", "2025-03-26"), ("1999-01-01", "2025-11-25")):  # negotiation
            older = {**opening, "params": {**opening["params"], "protocolVersion": asked}}
            answer = await http.post(url, json=older, headers={**accept, "Authorization": f"Bearer {world.token()}"})
            assert f'"protocolVersion":"{agreed}"' in answer.text.replace(" ", ""), answer.text
        session = {**accept, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
        other = await http.post(url, json=listing, headers={**session, "Authorization": f"Bearer {world.token('eve')}"})
        assert other.status_code == 404
        own = await http.post(url, json=listing, headers={**session, "Authorization": f"Bearer {world.token('pia')}"})
        assert own.status_code == 200 and '"name":"get"' in own.text.replace(" ", "")


async def test_get_masks_a_secret_and_lists_with_selectors(world: World) -> None:
    ns = world.namespace("mcp")
    world.kubectl("create", "secret", "generic", "db", "-n", ns, "--from-literal=password=hunter2-mcp")
    world.kubectl("create", "configmap", "a", "-n", ns)
    world.kubectl("label", "configmap", "a", "-n", ns, "tier=web")
    world.kubectl("create", "configmap", "b", "-n", ns)
    async with mcp_session(world, world.token("maya")) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert {"list_api_resources", "get", "apply", "delete", "scale", "pod_logs", "describe"} <= tools
        error, text = await call(session, "get", resource="secret", name="db", namespace=ns)
        assert not error and "hunter2" not in text
        assert "warning: " in text and yaml.safe_load(text.split("\n", 1)[1])["data"] == {"password": MARKER_B64}
        error, text = await call(session, "get", resource="cm", namespace=ns, label_selector="tier=web")
        assert not error and "name: a\n" in text and "name: b\n" not in text and "managedFields" not in text
    world.settle()
    [recorded] = json.loads(world.cli("sessions", "list", "--user", "sandbox:maya", "--output", "json").stdout)["items"]
    shown = world.cli("sessions", "show", recorded["id"], "--output", "json").stdout
    assert MARKER_B64 in shown and "hunter2" not in shown  # the recording holds what the client received


async def test_apply_creates_as_the_caller_then_scale_describe_and_delete(world: World) -> None:
    ns = world.namespace("mcp")
    manifest = yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
    )
    mark = world.control.audit_mark()
    async with mcp_session(world, world.token("mia")) as session:
        error, text = await call(session, "apply", manifest=manifest, namespace=ns, dry_run=True)
        assert not error and text.startswith("(dry run) Deployment/web applied")
        assert not world.control.exists(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
        error, text = await call(session, "apply", manifest=manifest, namespace=ns)
        assert not error and "+  replicas: 1" in text, text
        made = [e for e in world.served(f"/namespaces/{ns}/deployments/web", mark) if e.verb == "patch"]
        assert made and all(
            e.user == GATEWAY_USER and (e.impersonated or {}).get("username") == "sandbox:mia" for e in made
        ), [e.raw for e in made]
        assert (await call(session, "scale", resource="deploy", name="web", namespace=ns, replicas=3))[0] is False
        assert world.control.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")["spec"]["replicas"] == 3
        error, text = await call(session, "describe", resource="deployments.apps", name="web", namespace=ns)
        assert not error and "events:" in text and "replicas: 3" in text
        error, text = await call(session, "list_api_resources")
        assert not error and "name: deployments" in text
        assert (await call(session, "delete", resource="deployment", name="web", namespace=ns))[0] is False
        assert not world.control.exists(f"/apis/apps/v1/namespaces/{ns}/deployments/web")


async def test_a_deny_rule_refuses_the_tool_call_and_the_session_is_recorded(world: World) -> None:
    async with mcp_session(world, world.token("noah", claims={"repository": "acme/shop", "run_id": "91"})) as session:
        error, text = await call(
            session, "apply", manifest="kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n", namespace="kube-system"
        )
        assert error and "kube-system is managed by the platform team" in text and "kubegate" in text
        error, text = await call(session, "get", resource="configmaps", namespace="default")
        assert not error
    world.settle()
    listing = json.loads(world.cli("sessions", "list", "--user", "sandbox:noah", "--output", "json").stdout)
    [recorded] = listing["items"]
    manifest = "kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n"
    assert recorded["user_agent"].startswith("kubegate-mcp/") and recorded["via"] == "mcp"
    assert recorded["command"] == f"mcp apply manifest=<{len(manifest)} characters> namespace=kube-system"
    assert recorded["claims"]["repository"] == "acme/shop" and recorded["claims"]["run_id"] == "91"
    shown = json.dumps(json.loads(world.cli("sessions", "show", recorded["id"], "--output", "json").stdout))
    assert "kube-system-is-read-only" in shown and "/api/v1/namespaces/default/configmaps" in shown


@pytest.mark.parametrize("mode", ["wait", "async"])
async def test_a_held_call_returns_pending_and_the_identical_retry_runs_after_approval(world: World, mode: str) -> None:
    ns = world.namespace("mcp")
    world.kubectl("create", "configmap", "cfg", "-n", ns)
    world.set_policies(
        "mcp-approval",
        [
            {
                "name": f"configmap-deletion-in-{ns}",
                "match": {"verbs": ["delete"], "resources": ["configmaps"], "namespaces": [ns]},
                "action": "review",
                "reviewers": {"groups": ["platform-oncall"], "mode": mode},
            }
        ],
    )
    try:
        async with mcp_session(world, world.token(f"olga-{mode}")) as session:
            error, text = await call(session, "delete", resource="configmap", name="cfg", namespace=ns)
            pending = yaml.safe_load(text)["pending_approval"]
            assert not error and pending["approve_command"].startswith(
                f"kubegate requests approve {pending['request_id']} --server "
            )
            assert world.control.exists(f"/api/v1/namespaces/{ns}/configmaps/cfg")
            status = yaml.safe_load((await call(session, "approval_status", request_id=pending["request_id"]))[1])
            assert status["state"] == "pending"
            progress: list[str | None] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append(message)

            waiting = asyncio.create_task(
                session.call_tool(
                    "approval_status",
                    {"request_id": pending["request_id"], "wait_seconds": 60},
                    progress_callback=on_progress,
                )
            )
            approve = await asyncio.to_thread(
                world.cli, "requests", "approve", pending["request_id"], sub="bob", groups=("platform-oncall",)
            )
            assert approve.returncode == 0, approve.stderr
            status = yaml.safe_load((await asyncio.wait_for(waiting, 30)).content[0].text)  # type: ignore[union-attr]
            assert status["state"] == "approved" and "identical tool call again" in status["next"]
            assert progress and pending["request_id"] in str(progress[0])
            error, text = await call(session, "delete", resource="configmap", name="cfg", namespace=ns)
            assert not error and "ConfigMap/cfg deleted" in text and "was approved" in text
            assert not world.control.exists(f"/api/v1/namespaces/{ns}/configmaps/cfg")
        world.settle()
        [recorded] = json.loads(world.cli("sessions", "list", "--user", f"sandbox:olga-{mode}", "-o", "json").stdout)[
            "items"
        ]
        shown = json.loads(world.cli("sessions", "show", recorded["id"], "-o", "json").stdout)["events"]
        deletes = [e["data"] for e in shown if e["type"] == "tool_result" and e["data"]["tool"] == "delete"]
        assert [(d["pending"], d["error"]) for d in deletes] == [(pending["request_id"], False), ("", False)]
    finally:
        world.clear_policies("mcp-approval")


async def test_logs_exec_with_masked_output_explain_and_rollout_status(world: World) -> None:
    ns = world.namespace("mcp")
    world.pod(
        ns,
        "app",
        containers=[
            {"name": "app", "image": "busybox", "env": [{"name": "DB_PASSWORD", "value": "s3cr3t-Pa55word-mcp"}]}
        ],
    )
    world.env.cluster.append_log(ns, "app", "first line\nsecond line\n")
    world.kubectl("create", "deployment", "web", "--image=busybox", "-n", ns)
    async with mcp_session(world, world.token("ria")) as session:
        error, text = await call(session, "pod_logs", pod="app", namespace=ns, tail_lines=1)
        assert not error and text.strip().splitlines()[-1] == "second line" and "first line" not in text
        error, text = await call(session, "exec", pod="app", namespace=ns, command=["env"])
        result = yaml.safe_load(text)
        assert not error and result["exit_code"] == 0 and f"DB_PASSWORD={MARKER}" in result["stdout"]
        assert "s3cr3t" not in text
        error, text = await call(session, "exec", pod="app", namespace=ns, command=["sh", "-c", "echo e >&2; exit 3"])
        assert yaml.safe_load(text)["exit_code"] == "3" and yaml.safe_load(text)["stderr"] == "e\n"
        error, text = await call(session, "explain", kubectl=f"delete namespace {ns}")
        decision = yaml.safe_load(text)["decision"]
        assert not error and decision["action"] == "review" and "misses" not in decision
        assert "namespace-deletion-needs-a-human" in [m["rule"] for m in decision["matches"]]
        error, text = await call(session, "rollout_status", resource="deploy", name="web", namespace=ns)
        assert not error and yaml.safe_load(text)["rolled_out"] is False  # no controller-manager runs here


async def test_request_access_asks_reviewers_for_a_scope_the_policy_reviews(world: World) -> None:
    ns = world.namespace("mcp")
    world.set_policies(
        "mcp-scope",
        [
            {
                "name": f"agents-read-configmaps-in-{ns}-with-approval",
                "subjects": {"groups": ["ci-agents"]},
                "match": {"namespaces": [ns], "resources": ["configmaps"]},
                "action": "review",
                "reviewers": {"groups": ["platform-oncall"], "mode": "async"},
            }
        ],
    )
    try:
        async with mcp_session(world, world.token("sam", ("ci-agents",))) as session:
            error, text = await call(
                session,
                "request_access",
                namespace=ns,
                verbs=["get", "list"],
                resources=["configmaps"],
                reason="debug the PR",
                duration="30m",
            )
            pending = yaml.safe_load(text)["pending_approval"]
            assert not error and "calls within the scope go through" in pending["next"]
            status = yaml.safe_load((await call(session, "approval_status", request_id=pending["request_id"]))[1])
            assert status["state"] == "pending"
        async with mcp_session(world, world.token("ada")) as session:  # developers: the policy allows it already
            error, text = await call(
                session, "request_access", namespace=ns, verbs=["get"], resources=["configmaps"], reason="r"
            )
            assert error and "kubegate refused the access request: the policy already allows" in text
            error, text = await call(session, "approval_status", request_id=pending["request_id"])
            assert error and "no access request" in text  # another user's request is not hers to see
    finally:
        world.clear_policies("mcp-scope")


async def test_a_pr_agent_works_in_its_namespace_with_temporary_rbac_and_is_refused_elsewhere(world: World) -> None:
    pr, other = world.namespace("pr"), world.namespace("other")
    world.set_policies(
        "mcp-pr-agent",
        [
            DISCOVERY,
            {
                "name": "pr-agent-works-in-pr-namespaces",
                "subjects": {"groups": ["ci-agents"], "claims": {"repository": ["acme/shop"]}},
                "match": {"namespaces": ["pr-*"]},
                "action": "allow",
                "role": "edit",
                "mask": ["secret-values"],
            },
        ],
    )
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: preview}\n"
    token = world.token("pr-bot", ("ci-agents",), claims={"repository": "acme/shop"})
    try:
        mark = world.control.audit_mark()
        async with mcp_session(world, token) as session:
            error, text = await call(session, "apply", manifest=manifest, namespace=pr)
            assert not error and "ConfigMap/settings applied" in text, text
            error, text = await call(session, "get", resource="configmaps", namespace=pr)
            assert not error and "name: settings" in text
            error, text = await call(session, "apply", manifest=manifest, namespace=other)
            assert (
                error
                and f"kubegate denied this request: no policy rule allows 'sandbox:pr-bot' to patch "
                f"configmaps 'settings' in namespace '{other}'"
                in text
            ), text
        assert world.control.get(f"/api/v1/namespaces/{pr}/configmaps/settings")["data"] == {"mode": "preview"}
        assert not world.control.exists(f"/api/v1/namespaces/{other}/configmaps/settings")
        made = [e for e in world.served(f"/namespaces/{pr}/configmaps/settings", mark) if e.verb == "patch"]
        assert made and all((e.impersonated or {}).get("username") == "sandbox:pr-bot" for e in made)
        bindings = world.control.get(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{pr}/rolebindings")["items"]
        assert [
            b["roleRef"]["name"]
            for b in bindings
            if {"kind": "User", "name": "sandbox:pr-bot", "apiGroup": "rbac.authorization.k8s.io"}
            in b.get("subjects", [])
        ] == ["edit"]  # temporary RBAC
        elsewhere = world.served(f"/namespaces/{other}/configmaps", mark)
        assert [e.uri for e in elsewhere if e.user == GATEWAY_USER] == []  # refused before the cluster
    finally:
        world.clear_policies("mcp-pr-agent")
