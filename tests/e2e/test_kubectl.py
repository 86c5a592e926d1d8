"""The foundation, end to end: real kubectl through kubegate to a real kube-apiserver.

What reached the cluster, and as whom, is read from the cluster's own audit log (RequestReceived is
written before a request runs), never from kubegate's own account of it.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubegate.sandbox.envtest import GATEWAY_USER
from tests.conftest import World

pytestmark = pytest.mark.e2e


def test_get_namespaces_lists_the_clusters_own(world: World) -> None:
    out = world.kubectl("get", "namespaces").stdout
    assert "default" in out and "kube-system" in out and "STATUS" in out


def test_create_get_yaml_and_delete_a_pod(world: World) -> None:
    n = world.namespace()
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": n},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        }
    )
    world.kubectl("create", "-f", "-", input=manifest)
    out = world.kubectl("get", "pod", "web", "-n", n, "-o", "yaml").stdout
    assert "image: nginx" in out and f"namespace: {n}" in out
    assert "deleted" in world.kubectl("delete", "pod", "web", "-n", n, "--grace-period=0", "--force").stdout
    missing = world.kubectl("get", "pod", "web", "-n", n, check=False)
    assert missing.returncode != 0 and 'pods "web" not found' in missing.stderr


def test_typed_creates_send_protobuf_and_go_through_a_body_reading_policy(world: World) -> None:
    """kubectl's typed clients send protobuf bodies; with a CEL rule on bodies loaded, every one works."""
    n = world.namespace()
    assert "created" in world.kubectl("create", "namespace", f"{n}-made").stdout
    assert "created" in world.kubectl("create", "configmap", "cfg", "-n", n, "--from-literal=a=1").stdout
    assert "created" in world.kubectl("create", "secret", "generic", "s", "-n", n, "--from-literal=k=v").stdout
    assert "created" in world.kubectl("create", "deployment", "web", "-n", n, "--image=nginx").stdout
    token = world.kubectl("create", "token", "default", "-n", n).stdout.strip()
    assert token == "<masked by kubegate>"  # serviceaccount-tokens
    assert world.kubectl("auth", "can-i", "get", "pods", "-n", n).stdout.strip() == "yes"
    assert "sandbox:alice" in world.kubectl("auth", "whoami").stdout
    deployment = world.control.get(f"/apis/apps/v1/namespaces/{n}/deployments/web")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"


def _lines(proc: subprocess.Popen[str], until: str, limit: int = 50) -> list[str]:
    """Lines of a running kubectl until one contains `until` (kubectl exits or is killed by the test)."""
    seen: list[str] = []
    assert proc.stdout is not None
    while len(seen) < limit:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if until in line:
            return seen
    raise AssertionError(f"never saw {until!r}; got {seen!r}; stderr {proc.stderr.read() if proc.stderr else ''}")


def _watch_established(world: World, namespace: str, since: int) -> None:
    """The watch request has reached the cluster (its audit event): what is created now, it must see."""
    world.control.wait_for_event(
        lambda e: e.stage == "RequestReceived" and e.verb == "watch" and f"/namespaces/{namespace}/configmaps" in e.uri,
        since,
    )


def test_watch_sees_an_object_created_after_it_started(world: World) -> None:
    n = world.namespace()
    world.kubectl("create", "configmap", "early", "-n", n)
    mark = world.control.audit_mark()
    watcher = world.popen("get", "configmaps", "-n", n, "-w", "-o", "name")
    try:
        assert "configmap/early" in _lines(watcher, "early")[-1]
        _watch_established(world, n, mark)
        world.kubectl("create", "configmap", "late", "-n", n)
        assert "configmap/late" in _lines(watcher, "late")[-1]
    finally:
        watcher.kill()


def test_watch_only_sees_only_changes(world: World) -> None:
    n = world.namespace()
    world.kubectl("create", "configmap", "before", "-n", n)
    mark = world.control.audit_mark()
    watcher = world.popen("get", "configmaps", "-n", n, "--watch-only", "--output-watch-events")
    try:
        _watch_established(world, n, mark)
        world.kubectl("create", "configmap", "after", "-n", n)
        seen = _lines(watcher, "after")
        assert not any("before" in line for line in seen) and seen[-1].split()[:2] == ["ADDED", "after"]
    finally:
        watcher.kill()


def _stream(world: World, path: str) -> Any:
    assert world.env.gateway is not None and world.env.gateway.ca_file is not None
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    req = urllib.request.Request(world.env.server + path, headers={"Authorization": f"Bearer {world.token()}"})
    return urllib.request.urlopen(req, context=ctx, timeout=30)


def test_a_watch_from_a_resource_version_replays_what_followed_it(world: World) -> None:
    n = world.namespace()
    listed = world.control.get(f"/api/v1/namespaces/{n}/configmaps")
    world.kubectl("create", "configmap", "one", "-n", n)
    world.kubectl("create", "configmap", "two", "-n", n)
    version = listed["metadata"]["resourceVersion"]
    with _stream(world, f"/api/v1/namespaces/{n}/configmaps?watch=1&resourceVersion={version}") as resp:
        events = [json.loads(resp.readline()) for _ in range(2)]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "one"), ("ADDED", "two")]


def test_a_watch_list_stream_sends_initial_events_and_the_bookmark_that_ends_them(world: World) -> None:
    n = world.namespace()
    world.kubectl("create", "configmap", "a", "-n", n)
    path = (
        f"/api/v1/namespaces/{n}/configmaps?watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan"
    )
    with _stream(world, path) as resp:
        first, second = json.loads(resp.readline()), json.loads(resp.readline())
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "a")
    assert second["type"] == "BOOKMARK"
    assert second["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"


def test_apply_client_side_twice_then_server_side_and_diff(world: World, tmp_path: Path) -> None:
    n = world.namespace()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": n}, "data": {"a": "1"}}
    assert "created" in world.kubectl("apply", "-f", "-", input=json.dumps(cm)).stdout
    cm["data"] = {"a": "2"}
    assert "configured" in world.kubectl("apply", "-f", "-", input=json.dumps(cm)).stdout
    cm["data"] = {"a": "3"}
    manifest = tmp_path / "cm.json"
    manifest.write_text(json.dumps(cm))
    diff = world.kubectl("diff", "-f", str(manifest), check=False)
    assert diff.returncode == 1 and '-  a: "2"' in diff.stdout and '+  a: "3"' in diff.stdout, diff.stderr
    out = world.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest)).stdout
    assert "serverside-applied" in out
    assert world.kubectl("diff", "-f", str(manifest), check=False).returncode == 0
    assert world.control.get(f"/api/v1/namespaces/{n}/configmaps/cfg")["data"] == {"a": "3"}


def test_patch_of_all_four_types_and_replace(world: World) -> None:
    n = world.namespace()
    world.kubectl("create", "configmap", "p", "-n", n, "--from-literal=x=1")
    world.kubectl("patch", "configmap", "p", "-n", n, "-p", '{"data":{"y":"2"}}')
    world.kubectl("patch", "configmap", "p", "-n", n, "--type=json", "-p", '[{"op":"remove","path":"/data/x"}]')
    world.kubectl("patch", "configmap", "p", "-n", n, "--type=merge", "-p", '{"data":{"z":"3"}}')
    applied = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p", "namespace": n}, "data": {"w": "4"}}
    status, _ = world.raw(
        f"/api/v1/namespaces/{n}/configmaps/p?fieldManager=e2e",
        method="PATCH",
        headers={"Content-Type": "application/apply-patch+yaml"},
        body=json.dumps(applied).encode(),
    )
    assert status == 200  # kubectl has no --type=apply; server-side apply is the fourth patch type
    assert world.control.get(f"/api/v1/namespaces/{n}/configmaps/p")["data"] == {"y": "2", "z": "3", "w": "4"}
    current = json.loads(world.kubectl("get", "configmap", "p", "-n", n, "-o", "json").stdout)
    current["data"] = {"only": "this"}
    assert "replaced" in world.kubectl("replace", "-f", "-", input=json.dumps(current)).stdout
    assert world.control.get(f"/api/v1/namespaces/{n}/configmaps/p")["data"] == {"only": "this"}


def test_logs_and_follow(world: World) -> None:
    n = world.namespace()
    world.pod(n)
    world.env.cluster.append_log(n, "app", "first line\n")
    assert "first line" in world.kubectl("logs", "app", "-n", n).stdout
    follower = world.popen("logs", "-f", "app", "-n", n)
    try:
        assert "first line" in _lines(follower, "first line")[-1]
        world.env.cluster.append_log(n, "app", "second line\n")
        assert "second line" in _lines(follower, "second line")[-1]
    finally:
        follower.kill()


def test_auth_can_i_and_whoami_see_the_impersonated_identity(world: World) -> None:
    cfg = world.kubeconfig(
        "carol", ("developers", "system:masters"), claims={"repository": "acme/shop", "run_id": "42"}
    )
    assert world.kubectl("auth", "can-i", "create", "pods", kubeconfig=cfg).stdout.strip() == "yes"
    who = json.loads(world.kubectl("auth", "whoami", "-o", "json", kubeconfig=cfg).stdout)
    info = who["status"]["userInfo"]
    assert info["username"] == "sandbox:carol"
    assert "developers" in info["groups"] and "system:masters" not in info["groups"]
    assert info["extra"]["kubegate.dev/repository"] == ["acme/shop"]
    assert info["extra"]["kubegate.dev/run_id"] == ["42"]


def test_discovery_explain_and_raw_reads(world: World) -> None:
    out = world.kubectl("api-resources").stdout
    for name in ("pods", "secrets", "deployments", "clusterrolebindings"):
        assert name in out
    assert "containerPort" in world.kubectl("explain", "pods.spec.containers.ports").stdout
    version = json.loads(world.kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == "v1.36.2"
    assert json.loads(world.kubectl("get", "--raw", "/api/v1/namespaces/default").stdout)["kind"] == "Namespace"


def test_forbidden_from_the_cluster_passes_through_unchanged(world: World) -> None:
    cfg = world.kubeconfig("dave", ("developers-without-rbac",))
    world.set_policies("dave", [{"name": "dave-may-try", "subjects": {"users": ["sandbox:dave"]}, "action": "allow"}])
    try:
        out = world.kubectl("get", "pods", "-n", "default", kubeconfig=cfg, check=False)
        assert out.returncode != 0
        assert (
            'pods is forbidden: User "sandbox:dave" cannot list resource "pods" in API group "" '
            'in the namespace "default"'
        ) in out.stderr
    finally:
        world.clear_policies("dave")


def test_every_request_reaches_the_cluster_as_the_caller_never_as_kubegate(world: World) -> None:
    n = world.namespace()
    mark = world.control.audit_mark()
    cfg = world.kubeconfig("ivy")
    world.kubectl("create", "configmap", "c", "-n", n, kubeconfig=cfg)
    world.kubectl("get", "configmaps", "-n", n, "-o", "yaml", kubeconfig=cfg)
    world.kubectl("delete", "configmap", "c", "-n", n, kubeconfig=cfg)
    events = world.served(f"/namespaces/{n}/configmaps", mark)
    assert len(events) >= 3 and all(e.user == GATEWAY_USER for e in events)  # create, list, delete
    assert all((e.impersonated or {}).get("username") == "sandbox:ivy" for e in events), events


def test_client_token_and_impersonation_never_reach_the_cluster(world: World) -> None:
    token = world.token("mallory", ("developers",))
    marker = f"mallory-{uuid.uuid4().hex}"
    mark = world.control.audit_mark()
    status, _ = world.raw(
        f"/api/v1/namespaces?{marker}=1",
        {
            "Authorization": f"Bearer {token}",
            "Impersonate-User": "system:admin",
            "impersonate-group": "system:masters",
            "IMPERSONATE-EXTRA-scopes": "all",
            "Connection": "Impersonate-User, Authorization, X-Kubegate",
        },
    )
    assert status == 200
    seen = world.served(marker, mark)
    assert len(seen) == 1
    assert seen[0].user == GATEWAY_USER  # kubegate's own credentials, not the client's token
    impersonated = seen[0].impersonated or {}
    assert impersonated["username"] == "sandbox:mallory"
    assert "system:masters" not in impersonated.get("groups", [])
    assert "scopes" not in impersonated.get("extra", {})


def test_kubectl_as_system_masters_is_not_passed_on(world: World) -> None:
    marker = uuid.uuid4().hex[:10]
    mark = world.control.audit_mark()
    out = world.kubectl(
        "get",
        "configmaps",
        "-n",
        "default",
        "-l",
        f"m={marker}",
        "--as",
        "root",
        "--as-group",
        "system:masters",
        check=False,
    )
    assert out.returncode == 0, out.stderr
    seen = world.served(marker, mark)
    assert seen and all((e.impersonated or {}).get("username") == "sandbox:alice" for e in seen)
    assert all("system:masters" not in (e.impersonated or {}).get("groups", []) for e in seen)


@pytest.mark.parametrize("case", ["missing", "expired", "foreign"])
def test_bad_tokens_get_401_status_naming_the_reason(world: World, case: str) -> None:
    tokens = {
        "missing": None,
        "expired": world.token("erin", lifetime=-120),
        "foreign": world.token("erin").rsplit(".", 1)[0] + ".c2lnbmF0dXJl",
    }
    token = tokens[case]
    marker = uuid.uuid4().hex
    mark = world.control.audit_mark()
    status, body = world.raw(
        f"/api/v1/namespaces?m={marker}", {"Authorization": f"Bearer {token}"} if token else {}, authorize=False
    )
    assert status == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"
    assert {"missing": "no bearer token", "expired": "expired", "foreign": "signature"}[case] in body["message"]
    if token:
        assert token not in body["message"]
    assert not world.reached(marker, mark)


def test_kubectl_reports_an_expired_token(world: World) -> None:
    cfg = world.kubeconfig(token=world.token("erin", lifetime=-120))
    out = world.kubectl("get", "pods", kubeconfig=cfg, check=False)
    assert out.returncode != 0
    assert "You must be logged in to the server" in out.stderr


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/default%2Fsecrets",
        "/api/v1/namespaces/x/../secrets",
        "/api/v1//secrets",
        "/api/v1/namespaces/%2e%2e/secrets",
    ],
)
def test_ambiguous_paths_are_refused_before_the_cluster(world: World, path: str) -> None:
    marker = uuid.uuid4().hex
    mark = world.control.audit_mark()
    status, body = world.raw(f"{path}?m={marker}")
    assert status == 400 and body["reason"] == "BadRequest"
    assert not world.reached(marker, mark)


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
    assert 'kubegate_requests_total{code="200",connection="envtest",resource="namespaces",verb="list"}' in text
    assert "kubegate_request_duration_seconds_bucket" in text and "kubegate_open_streams" in text
