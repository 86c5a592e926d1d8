"""Policy end to end: what the gateway blocks before the cluster, through real kubectl."""

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

PRIVILEGED = ("object != null && has(object.spec) && has(object.spec.containers) && object.spec.containers.exists("
              "c, has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged)")


def pod(name: str, ns: str, privileged: bool) -> str:
    container: dict = {"name": "app", "image": "registry.example.com/app:1"}
    if privileged:
        container["securityContext"] = {"privileged": True}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                       "spec": {"containers": [container]}})


def test_a_deny_rule_blocks_before_the_cluster_with_its_message(world: World) -> None:
    world.set_policies("deny-cm", [{"name": "no-frozen-configmaps", "match": {"resources": ["configmaps"],
                                    "names": ["frozen-*"], "verbs": ["create", "update", "patch", "delete"]},
                                    "action": "deny", "message": "frozen-* configmaps are managed by Terraform"}])
    try:
        before = len(world.cluster.requests)
        out = world.kubectl("create", "configmap", "frozen-1", check=False)
        assert out.returncode != 0
        assert "denied by rule no-frozen-configmaps: frozen-* configmaps are managed by Terraform" in out.stderr
        cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen-2"}})
        out = world.kubectl("apply", "-f", "-", input=cm, check=False)
        assert out.returncode != 0 and "Error from server (Forbidden)" in out.stderr
        assert "no-frozen-configmaps" in out.stderr
        assert not [r for r in world.cluster.requests[before:] if "configmaps" in r.path and r.method == "POST"]
        assert world.kubectl("create", "configmap", f"thawed-{uuid.uuid4().hex[:6]}").returncode == 0
    finally:
        world.clear_policies("deny-cm")


def test_no_matching_rule_means_deny(world: World) -> None:
    cfg = world.kubeconfig("stranger", ("nobody-knows-me",))
    out = world.kubectl("get", "pods", kubeconfig=cfg, check=False)
    assert out.returncode != 0 and "Error from server (Forbidden)" in out.stderr
    assert "no policy rule allows" in out.stderr


def test_a_cel_rule_refuses_a_privileged_pod_in_apply(world: World) -> None:
    ns = f"cel-{uuid.uuid4().hex[:6]}"
    world.kubectl("create", "namespace", ns)
    world.set_policies("cel", [{"name": "no-privileged-pods", "match": {"resources": ["pods"],
                                "verbs": ["create", "update", "patch"]}, "condition": PRIVILEGED,
                                "action": "deny", "message": "privileged pods are not allowed"}])
    try:
        out = world.kubectl("apply", "-f", "-", input=pod("bad", ns, privileged=True), check=False)
        assert out.returncode != 0 and "no-privileged-pods" in out.stderr
        assert "privileged pods are not allowed" in out.stderr
        assert "created" in world.kubectl("apply", "-f", "-", input=pod("good", ns, privileged=False)).stdout
    finally:
        world.clear_policies("cel")


def test_a_cluster_wide_list_does_not_match_a_namespace_limited_allow(world: World) -> None:
    world.set_policies("pr", [{"name": "agents-in-pr", "subjects": {"groups": ["agents"]},
                               "match": {"namespaces": ["pr-*"]}, "action": "allow"}])
    try:
        cfg = world.kubeconfig("agent", ("agents",))
        world.kubectl("create", "namespace", f"pr-{uuid.uuid4().hex[:6]}")
        out = world.kubectl("get", "secrets", "-A", kubeconfig=cfg, check=False)
        assert out.returncode != 0 and "Forbidden" in out.stderr
    finally:
        world.clear_policies("pr")


def test_the_admin_api_explains_a_decision(world: World) -> None:
    assert world.env.gateway is not None
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    body = json.dumps({"sub": "bot", "groups": ["developers"], "issuer": world.env.issuer.url,
                       "kubectl": ["delete", "ns", "kube-system"]}).encode()
    req = urllib.request.Request(world.env.gateway.url + "/api/v1/policy/explain", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {world.token('audrey', ('auditors',))}",
                                          "Content-Type": "application/json"})
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
