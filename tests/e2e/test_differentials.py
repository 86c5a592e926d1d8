"""Requests that kubegate and kube-apiserver could read two ways: each is refused, or judged on what the
real cluster reads. Sent byte for byte with http.client, since kubectl never sends most of them."""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import World
from tests.protowire import envelope, field

pytestmark = pytest.mark.e2e

HOST_PID = "object != null && has(object.spec) && has(object.spec.hostPID) && object.spec.hostPID"
TEMPLATE_HOST_PID = (
    "object != null && has(object.spec) && has(object.spec.template.spec.hostPID) && object.spec.template.spec.hostPID"
)
PROTOBUF = "application/vnd.kubernetes.protobuf"


def send(
    world: World, method: str, target: str, body: bytes | None = None, content_type: str = "application/json"
) -> tuple[int, Any]:
    """One request to the gateway with `target` (after /k8s/<connection>) exactly as given."""
    assert world.env.gateway is not None and world.env.gateway.ca_file is not None
    base = urlsplit(world.env.server)
    conn = http.client.HTTPSConnection(
        base.hostname or "", base.port, context=ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    )
    try:
        conn.putrequest(method, base.path + target, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {world.token()}")
        conn.putheader("Accept", "application/json")
        if body is not None:
            conn.putheader("Content-Type", content_type)
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode(errors="replace")


@pytest.fixture
def host_pid_denied(world: World) -> Iterator[str]:
    world.set_policies(
        "diff",
        [
            {
                "name": "no-host-pid",
                "match": {"resources": ["pods"], "verbs": ["create", "update", "patch"]},
                "condition": HOST_PID,
                "action": "deny",
                "message": "pods may not share the host's PID namespace",
            },
            {
                "name": "no-host-pid-templates",
                "match": {"resources": ["deployments"], "verbs": ["create", "update", "patch"]},
                "condition": TEMPLATE_HOST_PID,
                "action": "deny",
                "message": "templates may not share the host's PID",
            },
        ],
    )
    try:
        yield world.namespace("diff")
    finally:
        world.clear_policies("diff")


def assert_refused(status: int, answer: Any, code: int, *words: str) -> None:
    assert status == code, answer
    assert isinstance(answer, dict) and answer.get("kind") == "Status", answer
    for word in words:
        assert word in answer["message"], answer["message"]


@pytest.mark.parametrize(
    ("method", "target", "why"),
    [
        ("DELETE", "/api/v1/namespaces/{victim}#/pods/x", "'#'"),
        ("GET", "/api/v1/namespaces/{ns}/configmaps?#&fieldSelector=metadata.name%3Dapp-1", "'#'"),
        ("GET", "/api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3Dapp-1;", "';'"),
        ("GET", "/api/v1/namespaces/{ns}/configmaps?labelSelector=%zz", "percent-escape"),
        ("GET", "/api/v1/namespaces/{ns}/configmaps?limit=1&limit=500", "more than once"),
    ],
)
def test_a_target_go_reads_another_way_is_refused_before_the_cluster(
    world: World, method: str, target: str, why: str
) -> None:
    ns, victim = world.namespace("diff"), world.namespace("victim")
    mark = world.control.audit_mark()
    status, answer = send(world, method, target.format(ns=ns, victim=victim))
    assert_refused(status, answer, 400, "kubegate", why)
    assert not world.reached(ns, mark) and not world.reached(victim, mark)
    assert world.control.exists(f"/api/v1/namespaces/{victim}")


def pod_json(name: str, ns: str, spec: str) -> bytes:
    meta = json.dumps({"name": name, "namespace": ns})
    return ('{"apiVersion":"v1","kind":"Pod","metadata":' + meta + ',"spec":' + spec + "}").encode()


def test_a_repeated_json_key_is_refused(world: World, host_pid_denied: str) -> None:
    ns = host_pid_denied
    containers = '"containers":[{"name":"app","image":"busybox"}]'
    body = pod_json("twice", ns, "{" + containers + ',"hostPID":false,"hostPID":true}')
    status, answer = send(world, "POST", f"/api/v1/namespaces/{ns}/pods", body)
    assert_refused(status, answer, 400, "kubegate", "'hostPID' appears twice")
    merged = pod_json("merged", ns, "{" + containers + ',"securityContext":{"runAsUser":1},"securityContext":{}}')
    status, answer = send(world, "POST", f"/api/v1/namespaces/{ns}/pods", merged)
    assert_refused(status, answer, 400, "appears twice")
    assert not world.control.exists(f"/api/v1/namespaces/{ns}/pods/twice")


# Protobuf bodies: the envelope (runtime.Unknown) and the few Pod fields these tests need.
def _pod(name: str, ns: str, *specs: bytes) -> bytes:
    meta = field(1, name.encode()) + field(3, ns.encode())
    return field(1, meta) + b"".join(field(2, spec) for spec in specs)


CONTAINERS = field(2, field(1, b"app") + field(2, b"busybox"))
HOST_PID_ON = field(12, 1)


@pytest.mark.parametrize("shape", ["raw twice", "spec twice"])
def test_repeated_protobuf_fields_are_judged_as_the_cluster_reads_them(
    world: World, host_pid_denied: str, shape: str
) -> None:
    ns = host_pid_denied
    name = f"pb-{uuid.uuid4().hex[:6]}"
    if shape == "raw twice":  # kubegate once read the first `raw`; the apiserver reads the last
        body = envelope(b"v1", b"Pod", _pod(name, ns, CONTAINERS), _pod(name, ns, CONTAINERS + HOST_PID_ON))
    else:  # gogo-protobuf merges a repeated embedded message
        body = envelope(b"v1", b"Pod", _pod(name, ns, CONTAINERS, HOST_PID_ON))
    # the oracle: the real apiserver reads these bytes as a hostPID pod
    _, read = world.control.request("POST", f"/api/v1/namespaces/{ns}/pods?dryRun=All", body, content_type=PROTOBUF)
    assert read["spec"]["hostPID"] is True and read["spec"]["containers"][0]["name"] == "app"
    status, answer = send(world, "POST", f"/api/v1/namespaces/{ns}/pods", body, PROTOBUF)
    assert_refused(status, answer, 403, "no-host-pid")
    assert not world.control.exists(f"/api/v1/namespaces/{ns}/pods/{name}")


@pytest.mark.parametrize("patch_type", ["strategic", "merge", "json"])
def test_a_patch_is_judged_on_the_object_it_would_store(world: World, host_pid_denied: str, patch_type: str) -> None:
    ns = host_pid_denied
    world.control.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "busybox"}]},
                },
            },
        }
    )
    if patch_type == "json":
        patch = json.dumps([{"op": "add", "path": "/spec/template/spec/hostPID", "value": True}])
    else:
        patch = json.dumps({"spec": {"template": {"spec": {"hostPID": True}}}})
    out = world.kubectl("patch", "deployment", "web", "-n", ns, "--type", patch_type, "-p", patch, check=False)
    assert out.returncode != 0 and "by rule no-host-pid-templates" in out.stderr, out.stderr
    stored = world.control.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web")
    assert not stored["spec"]["template"]["spec"].get("hostPID")
    fine = json.dumps({"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}})
    world.kubectl("patch", "deployment", "web", "-n", ns, "--type", "merge", "-p", fine)
