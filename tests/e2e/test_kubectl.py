"""The foundation, end to end: real kubectl through kubegate to the sandbox cluster."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.conftest import World

pytestmark = pytest.mark.e2e


def ns(world: World) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    world.kubectl("create", "namespace", name)
    return name


def test_get_namespaces_lists_the_sandbox_defaults(world: World) -> None:
    out = world.kubectl("get", "namespaces").stdout
    assert "default" in out and "kube-system" in out and "STATUS" in out


def test_create_get_yaml_and_delete_a_pod(world: World) -> None:
    n = ns(world)
    manifest = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": n},
                           "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    world.kubectl("create", "-f", "-", input=manifest)
    out = world.kubectl("get", "pod", "web", "-n", n, "-o", "yaml").stdout
    assert "image: nginx" in out and f"namespace: {n}" in out
    assert "deleted" in world.kubectl("delete", "pod", "web", "-n", n).stdout
    missing = world.kubectl("get", "pod", "web", "-n", n, check=False)
    assert missing.returncode != 0 and 'pods "web" not found' in missing.stderr


def test_watch_sees_an_object_created_after_it_started(world: World) -> None:
    n = ns(world)
    watcher = world.popen("get", "configmaps", "-n", n, "-w", "-o", "name")
    try:
        time.sleep(1.5)
        world.kubectl("create", "configmap", "late", "-n", n)
        deadline = time.monotonic() + 20
        seen = ""
        while time.monotonic() < deadline and "late" not in seen:
            assert watcher.stdout is not None
            seen += watcher.stdout.readline()
        assert "configmap/late" in seen
    finally:
        watcher.kill()


def test_apply_client_side_twice_then_server_side(world: World) -> None:
    n = ns(world)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": n},
          "data": {"a": "1"}}
    assert "created" in world.kubectl("apply", "-f", "-", input=json.dumps(cm)).stdout
    cm["data"] = {"a": "2"}
    assert "configured" in world.kubectl("apply", "-f", "-", input=json.dumps(cm)).stdout
    cm["data"] = {"a": "3"}
    out = world.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(cm)).stdout
    assert "serverside-applied" in out
    got = json.loads(world.kubectl("get", "configmap", "cfg", "-n", n, "-o", "json").stdout)
    assert got["data"] == {"a": "3"}


def test_patch_strategic_merge_and_json(world: World) -> None:
    n = ns(world)
    world.kubectl("create", "configmap", "p", "-n", n, "--from-literal=x=1")
    world.kubectl("patch", "configmap", "p", "-n", n, "-p", '{"data":{"y":"2"}}')
    world.kubectl("patch", "configmap", "p", "-n", n, "--type=json", "-p",
                  '[{"op":"remove","path":"/data/x"}]')
    world.kubectl("patch", "configmap", "p", "-n", n, "--type=merge", "-p", '{"data":{"z":"3"}}')
    got = json.loads(world.kubectl("get", "configmap", "p", "-n", n, "-o", "json").stdout)
    assert got["data"] == {"y": "2", "z": "3"}


def test_logs_and_follow(world: World) -> None:
    n = ns(world)
    world.kubectl("run", "app", "-n", n, "--image=busybox")
    world.cluster.append_log(n, "app", "first line\n")
    assert "first line" in world.kubectl("logs", "app", "-n", n).stdout
    follower = world.popen("logs", "-f", "app", "-n", n)
    try:
        assert follower.stdout is not None
        assert "first line" in follower.stdout.readline()
        world.cluster.append_log(n, "app", "second line\n")
        assert "second line" in follower.stdout.readline()
    finally:
        follower.kill()


def test_auth_can_i_and_whoami_see_the_impersonated_identity(world: World) -> None:
    cfg = world.kubeconfig("carol", ("developers", "system:masters"),
                           claims={"repository": "acme/shop", "run_id": "42"})
    assert world.kubectl("auth", "can-i", "create", "pods", kubeconfig=cfg).stdout.strip() == "yes"
    who = json.loads(world.kubectl("auth", "whoami", "-o", "json", kubeconfig=cfg).stdout)
    info = who["status"]["userInfo"]
    assert info["username"] == "sandbox:carol"
    assert "developers" in info["groups"] and "system:masters" not in info["groups"]
    assert info["extra"]["kubegate.dev/repository"] == ["acme/shop"]
    assert info["extra"]["kubegate.dev/run_id"] == ["42"]


def test_api_resources_through_aggregated_discovery(world: World) -> None:
    out = world.kubectl("api-resources").stdout
    for name in ("pods", "secrets", "deployments", "clusterrolebindings"):
        assert name in out


def test_forbidden_from_the_cluster_passes_through_unchanged(world: World) -> None:
    cfg = world.kubeconfig("dave", ("developers-without-rbac",))
    world.set_policies("dave", [{"name": "dave-may-try", "subjects": {"users": ["sandbox:dave"]},
                                 "action": "allow"}])
    try:
        out = world.kubectl("get", "pods", "-n", "default", kubeconfig=cfg, check=False)
        assert out.returncode != 0
        assert ('pods is forbidden: User "sandbox:dave" cannot list resource "pods" in API group "" '
                'in the namespace "default"') in out.stderr
    finally:
        world.clear_policies("dave")


def _raw(world: World, path: str, headers: dict[str, str]) -> tuple[int, dict]:
    assert world.env.gateway is not None and world.env.gateway.ca_file is not None
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    req = urllib.request.Request(world.env.server + path, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_client_token_and_impersonation_never_reach_the_cluster(world: World) -> None:
    token = world.token("mallory", ("developers",))
    marker = f"mallory-{uuid.uuid4().hex}"
    status, _ = _raw(world, f"/api/v1/namespaces?{marker}=1", {
        "Authorization": f"Bearer {token}",
        "Impersonate-User": "system:admin",
        "impersonate-group": "system:masters",
        "IMPERSONATE-EXTRA-scopes": "all",
        "Connection": "Impersonate-User, Authorization, X-Kubegate",
    })
    assert status == 200
    seen = [r for r in world.cluster.requests if marker in r.query_string]
    assert len(seen) == 1
    headers = seen[0].headers
    assert token not in str(list(headers.items()))
    assert headers.getall("Impersonate-User") == ["sandbox:mallory"]
    assert "system:masters" not in headers.getall("Impersonate-Group", [])
    assert headers["Authorization"] == f"Bearer {world.cluster.gateway_token}"
    assert not [k for k in headers if k.lower() == "impersonate-extra-scopes"]


def test_kubectl_as_system_masters_is_not_passed_on(world: World) -> None:
    marker = uuid.uuid4().hex[:10]
    out = world.kubectl("get", "configmaps", "-n", "default", "-l", f"m={marker}", "--as", "root",
                        "--as-group", "system:masters", check=False)
    assert out.returncode == 0, out.stderr
    seen = [r for r in world.cluster.requests if marker in r.query_string]
    assert seen and all(r.headers.getall("Impersonate-User") == ["sandbox:alice"] for r in seen)
    assert all("system:masters" not in r.headers.getall("Impersonate-Group", []) for r in seen)


@pytest.mark.parametrize("case", ["missing", "expired", "foreign"])
def test_bad_tokens_get_401_status_naming_the_reason(world: World, case: str) -> None:
    tokens = {"missing": None, "expired": world.token("erin", lifetime=-120),
              "foreign": world.token("erin").rsplit(".", 1)[0] + ".c2lnbmF0dXJl"}
    token = tokens[case]
    status, body = _raw(world, "/api/v1/namespaces", {"Authorization": f"Bearer {token}"} if token else {})
    assert status == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    assert {"missing": "no bearer token", "expired": "expired", "foreign": "signature"}[case] in body["message"]
    if token:
        assert token not in body["message"]


def test_kubectl_reports_an_expired_token(world: World) -> None:
    cfg = world.kubeconfig(token=world.token("erin", lifetime=-120))
    out = world.kubectl("get", "pods", kubeconfig=cfg, check=False)
    assert out.returncode != 0
    assert "You must be logged in to the server" in out.stderr


@pytest.mark.parametrize("path", ["/api/v1/namespaces/default%2Fsecrets", "/api/v1/namespaces/x/../secrets",
                                  "/api/v1//secrets", "/api/v1/namespaces/%2e%2e/secrets"])
def test_ambiguous_paths_are_refused_before_the_cluster(world: World, path: str) -> None:
    before = len(world.cluster.requests)
    status, body = _raw(world, path, {"Authorization": f"Bearer {world.token()}"})
    assert status == 400 and body["reason"] == "BadRequest"
    assert len(world.cluster.requests) == before


def test_probes_and_metrics(world: World) -> None:
    assert world.env.gateway is not None
    base = world.env.gateway.url
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    world.kubectl("get", "namespaces")
    with urllib.request.urlopen(base + "/healthz", context=ctx) as r:
        assert r.read() == b"ok"
    with urllib.request.urlopen(base + "/readyz", context=ctx) as r:
        assert json.loads(r.read())["ready"] is True
    with urllib.request.urlopen(base + "/metrics", context=ctx) as r:
        text = r.read().decode()
    assert 'kubegate_requests_total{code="200",connection="sandbox",resource="namespaces",verb="list"}' in text
    assert "kubegate_request_duration_seconds_bucket" in text and "kubegate_open_streams" in text
