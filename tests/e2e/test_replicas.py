"""Two gateway processes on one PostgreSQL store, as replicas behind a load balancer run: kubectl
held by one is released by an approval given through the other, and both serve the same records."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.approvals.builders import SLACK_SECRET, slack_click, slack_signed
from tests.conftest import KUBECTL, World, kubectl_env
from tests.e2e.gateways import GatewayProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
ONCALL = ("platform-oncall",)


SLACK = {"signing_secret": SLACK_SECRET, "users": {"U0BOB": {"username": "sandbox:bob", "groups": list(ONCALL)}}}


@pytest.fixture
def replicas(world: World, tmp_path: Path, pg_url: str) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    first = GatewayProcess(world, tmp_path / "a", pg_url, config={"approvals": {"slack": SLACK}})
    try:
        second = GatewayProcess(world, tmp_path / "b", pg_url, config={"approvals": {"slack": SLACK}})
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def pending(world: World, gateway: GatewayProcess, needle: str, held: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = json.loads(gateway.cli(world, "requests", "list", "-o", "json", sub="bob", groups=ONCALL))["items"]
        found = [r for r in items if needle in r["description"]]
        if found:
            return found[0]
        assert held.poll() is None, held.communicate()
        time.sleep(0.2)
    raise AssertionError(f"replica {gateway.url} lists no access request for {needle}")


def held_delete(world: World, gateway: GatewayProcess, tmp_path: Path) -> tuple[str, subprocess.Popen[str]]:
    """alice's `kubectl delete namespace` through `gateway`, which a review rule holds."""
    name = f"e2e-replica-{uuid.uuid4().hex[:8]}"
    world.kubectl("create", "namespace", name)
    kubeconfig = gateway.kubeconfig(tmp_path / "alice.kubeconfig", world.token("alice", ("developers",)))
    kubectl = subprocess.Popen(
        [KUBECTL, f"--kubeconfig={kubeconfig}", "delete", "namespace", name, "--wait=false"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl_env(),
    )
    return name, kubectl


def test_an_approval_given_through_one_replica_releases_kubectl_held_by_the_other(
    world: World, replicas: tuple[GatewayProcess, GatewayProcess], tmp_path: Path
) -> None:
    first, second = replicas
    name, kubectl = held_delete(world, first, tmp_path)
    try:
        request = pending(world, second, f"namespaces {name}", kubectl)
        assert kubectl.poll() is None
        out = second.cli(world, "requests", "approve", request["id"], sub="bob", groups=ONCALL)
        assert f"access request {request['id']} approved" in out
        stdout, stderr = kubectl.communicate(timeout=60)
        assert kubectl.returncode == 0, stderr
        assert f'namespace "{name}" deleted' in stdout
    finally:
        kubectl.kill()
    # The session replica A recorded reads the same through replica B, approval included.
    session = json.loads(
        second.cli(world, "sessions", "show", request["session_id"], "-o", "json", sub="audrey", groups=("auditors",))
    )
    assert session["session"]["username"] == "sandbox:alice" and session["session"]["command"] == "kubectl delete"
    kinds = [e["type"] for e in session["events"]]
    assert "approval" in kinds and kinds.index("approval") < len(kinds) - 1


def slack_post(gateway: GatewayProcess, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"{gateway.url}/slack/interactions", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, context=gateway.ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_a_slack_click_approves_through_one_replica_and_its_replay_to_the_other_is_refused(
    world: World, replicas: tuple[GatewayProcess, GatewayProcess], tmp_path: Path
) -> None:
    first, second = replicas
    name, kubectl = held_delete(world, first, tmp_path)
    try:
        request = pending(world, first, f"namespaces {name}", kubectl)
        body = slack_click("approve", request["id"])
        headers = slack_signed(body)
        status, reply = slack_post(second, body, headers)
        assert (status, reply["text"]) == (200, f"Access request {request['id']} is approved (approve by sandbox:bob).")
        stdout, stderr = kubectl.communicate(timeout=60)
        assert kubectl.returncode == 0, stderr
        assert f'namespace "{name}" deleted' in stdout
        status, reply = slack_post(first, body, headers)  # replica A never saw the click
        assert status == 401 and "replay" in reply["error"]
    finally:
        kubectl.kill()
