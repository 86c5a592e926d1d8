"""Recording end to end: kubectl commands become sessions that auditors can list, show, replay and verify."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import World

pytestmark = pytest.mark.e2e


def test_a_kubectl_command_is_a_session_with_its_identity_and_outputs(world: World) -> None:
    name = f"rec-{uuid.uuid4().hex[:8]}"
    cfg = world.kubeconfig("rita", ("developers",), claims={"repository": "acme/shop", "run_id": "77",
                                                           "workflow": "deploy", "actor": "rita"})
    world.kubectl("create", "configmap", name, "--from-literal=k=v", kubeconfig=cfg)
    listing = json.loads(world.cli("sessions", "list", "--user", "sandbox:rita", "--command", "create",
                                   "--output", "json").stdout)
    sessions = [s for s in listing["items"] if s["command"].startswith("kubectl create")]
    assert sessions, listing
    session = sessions[0]
    assert session["username"] == "sandbox:rita" and session["connection"] == "envtest"
    assert session["claims"]["repository"] == "acme/shop" and session["claims"]["run_id"] == "77"
    assert session["user_agent"].startswith("kubectl/")
    shown = json.loads(world.cli("sessions", "show", session["id"], "--output", "json").stdout)
    types = [e["type"] for e in shown["events"]]
    assert types.index("request") < types.index("response")
    bodies = json.dumps(shown["events"])
    assert name in bodies
    replay = world.cli("sessions", "replay", session["id"], "--speed", "100").stdout
    assert "kubectl create configmap" in replay and name in replay


def test_denials_are_recorded_and_listed_by_outcome(world: World) -> None:
    cfg = world.kubeconfig("dan", ("developers",))
    out = world.kubectl("create", "configmap", "nope", "-n", "kube-system", kubeconfig=cfg, check=False)
    assert out.returncode != 0 and "kube-system-is-read-only" in out.stderr
    listing = json.loads(world.cli("sessions", "list", "--user", "sandbox:dan", "--outcome", "denied",
                                   "--output", "json").stdout)
    assert listing["items"], "the denial should make a denied session"


def test_an_apply_that_creates_is_ok_and_the_list_names_its_object(world: World) -> None:
    """kubectl apply GETs the object (404), then creates it (201): the session's last answer decides."""
    name = f"apply-{uuid.uuid4().hex[:8]}"
    cfg = world.kubeconfig("ada", ("developers",))
    cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    world.kubectl("apply", "-f", "-", input=cm, kubeconfig=cfg)
    world.settle()
    listing = json.loads(world.cli("sessions", "list", "--user", "sandbox:ada", "--command", "apply",
                                   "-o", "json").stdout)
    [session] = [s for s in listing["items"] if s["target"] and s["target"]["name"] == name]
    assert session["outcome"] == "ok"
    assert {k: session["target"][k] for k in ("verb", "resource", "namespace")} == {
        "verb": "get", "resource": "configmaps", "namespace": "default"}
    table = world.cli("sessions", "list", "--user", "sandbox:ada", "--command", "apply").stdout
    assert f"get configmaps {name} -n default" in table


def test_only_auditors_and_admins_read_sessions(world: World) -> None:
    out = world.cli("sessions", "list", sub="mallory", groups=("developers",), check=False)
    assert out.returncode != 0 and "auditor" in out.stderr


def test_the_chain_verifies_after_real_traffic(world: World) -> None:
    import subprocess
    import sys

    world.kubectl("get", "namespaces")
    assert world.env.config is not None
    proc = subprocess.run([sys.executable, "-m", "kubegate", "audit", "verify", "--config",
                           str(world.env.config_file)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "audit chain OK" in proc.stdout
