"""Just-in-time approval end to end: real kubectl waits, a reviewer's `kubegate requests` in another
process decides, and kubectl finishes or prints Forbidden with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

from tests.conftest import World

pytestmark = pytest.mark.e2e
ONCALL = ("platform-oncall",)


def _namespace(world: World) -> str:
    name = f"e2e-appr-{uuid.uuid4().hex[:8]}"
    world.kubectl("create", "namespace", name)
    return name


def delete_namespace(world: World, name: str) -> subprocess.Popen[str]:
    """kubectl deleting a namespace; it does not wait for the deletion to finish (no controller-manager
    runs to finish it: the namespace stays Terminating)."""
    return world.popen("delete", "namespace", name, "--wait=false")


def requests_cli(
    world: World,
    *args: str,
    sub: str = "bob",
    groups: tuple[str, ...] = ONCALL,
) -> subprocess.CompletedProcess[str]:
    """`kubegate requests ...` as a separate process, with the reviewer's own OIDC token."""
    gateway = world.env.gateway
    assert gateway is not None
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kubegate",
            "requests",
            *args,
            "--server",
            gateway.url,
            "--token",
            world.token(sub, groups),
            "--ca",
            str(gateway.ca_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def pending_request(world: World, needle: str, held: subprocess.Popen[str] | None = None) -> dict[str, Any]:
    """The pending access request whose description mentions `needle`, once the gateway has made it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = requests_cli(world, "list", "-o", "json")
        assert done.returncode == 0, done.stderr
        found = [r for r in json.loads(done.stdout)["items"] if needle in r["description"]]
        if found:
            return found[0]
        assert held is None or held.poll() is None, held.communicate()
        time.sleep(0.2)
    raise AssertionError(f"no pending access request mentions {needle}")


def test_kubectl_waits_until_a_reviewer_approves_in_another_process(world: World) -> None:
    name = _namespace(world)
    kubectl = delete_namespace(world, name)
    try:
        request = pending_request(world, f"namespaces {name}", kubectl)
        assert kubectl.poll() is None  # held open while nobody has decided
        assert request["requester"]["username"] == "sandbox:alice"
        assert request["request"]["method"] == "DELETE"
        approved = requests_cli(world, "approve", request["id"], "--comment", "cleanup of a finished PR")
        assert approved.returncode == 0, approved.stderr
        assert f"access request {request['id']} approved" in approved.stdout
        out, err = kubectl.communicate(timeout=60)
        assert kubectl.returncode == 0, err
        assert f'namespace "{name}" deleted' in out
        assert (
            f"Warning: kubegate let this request through: access request {request['id']} was approved by sandbox:bob"
        ) in err
    finally:
        kubectl.kill()


def test_a_denial_makes_kubectl_print_forbidden_with_the_reason(world: World) -> None:
    name = _namespace(world)
    kubectl = delete_namespace(world, name)
    try:
        request = pending_request(world, f"namespaces {name}", kubectl)
        denied = requests_cli(world, "deny", request["id"], "--reason", "this namespace hosts the demo")
        assert denied.returncode == 0, denied.stderr
        _, err = kubectl.communicate(timeout=60)
        assert kubectl.returncode != 0
        assert "Error from server (Forbidden)" in err
        assert f"access request {request['id']} was denied by sandbox:bob: this namespace hosts the demo" in err
    finally:
        kubectl.kill()
    assert world.kubectl("get", "namespace", name).returncode == 0


def test_an_async_rule_prints_the_approve_command_and_the_approval_lets_the_retry_through(world: World) -> None:
    name = _namespace(world)
    world.kubectl("create", "configmap", "cfg", "-n", name)
    world.set_policies(
        "e2e-async-approval",
        [
            {
                "name": f"configmap-deletion-in-{name}",
                "match": {"verbs": ["delete"], "resources": ["configmaps"], "namespaces": [name]},
                "action": "review",
                "reviewers": {"groups": ["platform-oncall"], "mode": "async"},
            }
        ],
    )
    try:
        kubeconfig = world.kubeconfig()
        first = world.kubectl("delete", "configmap", "cfg", "-n", name, kubeconfig=kubeconfig, check=False)
        assert first.returncode != 0 and "Error from server (Forbidden)" in first.stderr
        gateway = world.env.gateway
        assert gateway is not None
        request = pending_request(world, f"configmaps cfg in namespace {name}")
        assert f"kubegate requests approve {request['id']} --server {gateway.url}" in first.stderr
        assert requests_cli(world, "approve", request["id"]).returncode == 0
        retry = world.kubectl("delete", "configmap", "cfg", "-n", name, kubeconfig=kubeconfig)
        assert 'configmap "cfg" deleted' in retry.stdout
    finally:
        world.clear_policies("e2e-async-approval")


def test_a_hostile_host_header_names_nothing_kubegate_hands_out(world: World) -> None:
    name = _namespace(world)
    world.set_policies(
        "e2e-hostile-host",
        [
            {
                "name": f"configmap-deletion-in-{name}",
                "match": {"verbs": ["delete"], "resources": ["configmaps"], "namespaces": [name]},
                "action": "review",
                "reviewers": {"groups": ["platform-oncall"], "mode": "async"},
            }
        ],
    )
    try:
        status, body = world.raw(
            f"/api/v1/namespaces/{name}/configmaps/cfg", {"Host": "attacker.example"}, method="DELETE"
        )
        assert status == 403 and body["kind"] == "Status", body
        gateway = world.env.gateway
        assert gateway is not None
        request = pending_request(world, f"configmaps cfg in namespace {name}")
        assert f"kubegate requests approve {request['id']} --server {gateway.url}" in body["message"]
        assert "attacker" not in json.dumps(body) and "attacker" not in json.dumps(request)
        assert requests_cli(world, "deny", request["id"], "--reason", "no Host trickery").returncode == 0
    finally:
        world.clear_policies("e2e-hostile-host")


def test_the_requester_cannot_approve_its_own_request(world: World) -> None:
    name = _namespace(world)
    olivia = ("developers", "platform-oncall")
    kubectl = world.popen("delete", "namespace", name, kubeconfig=world.kubeconfig("olivia", olivia))
    try:
        request = pending_request(world, f"namespaces {name}", kubectl)
        own = requests_cli(world, "approve", request["id"], sub="olivia", groups=olivia)
        assert own.returncode == 1
        assert "nobody reviews their own request" in own.stderr
        assert kubectl.poll() is None
        assert requests_cli(world, "deny", request["id"], "--reason", "self-approval attempt").returncode == 0
        kubectl.communicate(timeout=60)
    finally:
        kubectl.kill()
