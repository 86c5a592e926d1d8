"""Policy end to end: what the gateway blocks before the cluster, through real kubectl to a real
kube-apiserver, whose audit log shows what reached it."""

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

HOST_PID = "object != null && has(object.spec) && has(object.spec.hostPID) && object.spec.hostPID"


def pod(name: str, ns: str, host_pid: bool) -> str:
    spec: dict = {"containers": [{"name": "app", "image": "registry.example.com/app:1"}]}
    if host_pid:
        spec["hostPID"] = True
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec})


def test_a_deny_rule_blocks_before_the_cluster_with_its_message(world: World) -> None:
    world.set_policies(
        "deny-cm",
        [
            {
                "name": "no-frozen-configmaps",
                "match": {
                    "resources": ["configmaps"],
                    "names": ["frozen-*"],
                    "verbs": ["create", "update", "patch", "delete"],
                },
                "action": "deny",
                "message": "frozen-* configmaps are managed by Terraform",
            }
        ],
    )
    try:
        mark = world.control.audit_mark()
        out = world.kubectl("create", "configmap", "frozen-1", check=False)
        assert out.returncode != 0
        assert (
            "kubegate denied this request by rule no-frozen-configmaps: frozen-* configmaps are managed by Terraform"
        ) in out.stderr
        cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen-2"}})
        out = world.kubectl("apply", "-f", "-", input=cm, check=False)
        assert out.returncode != 0 and "Error from server (Forbidden)" in out.stderr
        assert "no-frozen-configmaps" in out.stderr
        # the rule reads the name in the body, so the cluster was asked what it would store (a dry run);
        # no write reached it
        assert not [
            e for e in world.reached("/configmaps", mark) if e.verb in ("create", "patch") and "dryRun=All" not in e.uri
        ]
        assert world.kubectl("create", "configmap", f"thawed-{uuid.uuid4().hex[:6]}").returncode == 0
        assert [e for e in world.reached("/configmaps", mark) if e.verb == "create"]
    finally:
        world.clear_policies("deny-cm")


def test_no_matching_rule_means_deny(world: World) -> None:
    cfg = world.kubeconfig("stranger", ("nobody-knows-me",))
    out = world.kubectl("get", "pods", kubeconfig=cfg, check=False)
    assert out.returncode != 0 and "Error from server (Forbidden)" in out.stderr
    assert "no policy rule allows" in out.stderr


def test_a_cel_rule_refuses_a_host_pid_pod_in_apply(world: World) -> None:
    ns = world.namespace("cel")
    world.set_policies(
        "cel",
        [
            {
                "name": "no-host-pid",
                "match": {"resources": ["pods"], "verbs": ["create", "update", "patch"]},
                "condition": HOST_PID,
                "action": "deny",
                "message": "pods may not share the host's PID namespace",
            }
        ],
    )
    try:
        mark = world.control.audit_mark()
        out = world.kubectl("apply", "-f", "-", input=pod("bad", ns, host_pid=True), check=False)
        assert out.returncode != 0
        assert (
            "kubegate denied this request by rule no-host-pid: pods may not share the host's PID namespace"
        ) in out.stderr
        # the only write that reached the cluster is the dry run whose answer policy judged
        writes = [e for e in world.served(f"/namespaces/{ns}/pods", mark) if e.verb == "create"]
        assert writes and all("dryRun=All" in e.uri for e in writes)
        assert not world.control.exists(f"/api/v1/namespaces/{ns}/pods/bad")
        assert "created" in world.kubectl("apply", "-f", "-", input=pod("good", ns, host_pid=False)).stdout
    finally:
        world.clear_policies("cel")


def test_a_cluster_wide_list_does_not_match_a_namespace_limited_allow(world: World) -> None:
    """kubegate refuses before the cluster (the cluster, where agents have no RBAC, would too: so the
    test asks the audit log that nothing reached it, and that the allow does let a pr-* list through)."""
    world.set_policies(
        "pr",
        [
            {
                "name": "agents-in-pr",
                "subjects": {"groups": ["agents"]},
                "match": {"namespaces": ["pr-*"]},
                "action": "allow",
            }
        ],
    )
    try:
        cfg = world.kubeconfig("agent", ("agents",))
        pr = world.namespace("pr")
        marker = uuid.uuid4().hex[:8]
        mark = world.control.audit_mark()
        out = world.kubectl("get", "secrets", "-A", "-l", f"m={marker}", kubeconfig=cfg, check=False)
        assert out.returncode != 0 and "no policy rule allows 'sandbox:agent' to list secrets" in out.stderr
        assert not world.reached(marker, mark)
        inside = world.kubectl("get", "secrets", "-n", pr, "-l", f"m={marker}", kubeconfig=cfg, check=False)
        assert 'forbidden: User "sandbox:agent" cannot list resource "secrets"' in inside.stderr
        assert world.reached(marker, mark)
    finally:
        world.clear_policies("pr")


def test_the_admin_api_explains_a_decision(world: World) -> None:
    assert world.env.gateway is not None
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    body = json.dumps(
        {
            "sub": "bot",
            "groups": ["developers"],
            "issuer": world.env.issuer.url,
            "kubectl": ["delete", "ns", "kube-system"],
        }
    ).encode()
    req = urllib.request.Request(
        world.env.gateway.url + "/api/v1/policy/explain",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {world.token('audrey', ('auditors',))}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        answer = json.loads(resp.read())
    assert answer["identity"]["username"] == "sandbox:bot"
    assert answer["decision"]["action"] == "deny"
    rules = {m["rule"] for m in answer["decision"]["matches"]}
    assert {"kube-system-is-read-only", "namespace-deletion-needs-a-human", "developers-work-everywhere"} <= rules
    req.add_header("Authorization", f"Bearer {world.token('dev', ('developers',))}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, context=ctx, timeout=10)
    assert err.value.code == 403


def test_an_invalid_policy_file_keeps_the_previous_policy_and_shows_in_readyz(world: World) -> None:
    assert world.env.gateway is not None
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    bad = world.env.policy_dir / "broken.yaml"
    bad.write_text("policies:\n  - name: oops\n    action: allow\n    match: {verbs: [fly]}\n")
    try:
        deadline = time.monotonic() + 20
        detail: dict = {}
        while time.monotonic() < deadline:
            with urllib.request.urlopen(world.env.gateway.url + "/readyz", context=ctx, timeout=10) as r:
                detail = json.loads(r.read())
            if detail["checks"]["policy"]["error"]:
                break
            time.sleep(0.2)
        assert detail["ready"] is True
        assert "broken.yaml" in detail["checks"]["policy"]["error"]
        assert "match.verbs" in detail["checks"]["policy"]["error"]
        assert world.kubectl("get", "namespaces").returncode == 0
    finally:
        bad.unlink()
