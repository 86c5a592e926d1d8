"""Recording end to end: kubectl commands become sessions that auditors can list, show, replay and verify."""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from kubegate.store.tables import events
from tests.conftest import World

pytestmark = pytest.mark.e2e


def test_a_kubectl_command_is_a_session_with_its_identity_and_outputs(world: World) -> None:
    name = f"rec-{uuid.uuid4().hex[:8]}"
    cfg = world.kubeconfig(
        "rita",
        ("developers",),
        claims={"repository": "acme/shop", "run_id": "77", "workflow": "deploy", "actor": "rita"},
    )
    world.kubectl("create", "configmap", name, "--from-literal=k=v", kubeconfig=cfg)
    listing = json.loads(
        world.cli("sessions", "list", "--user", "sandbox:rita", "--command", "create", "--output", "json").stdout
    )
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
    listing = json.loads(
        world.cli("sessions", "list", "--user", "sandbox:dan", "--outcome", "denied", "--output", "json").stdout
    )
    assert listing["items"], "the denial should make a denied session"


def test_an_apply_that_creates_is_ok_and_the_list_names_its_object(world: World) -> None:
    """kubectl apply GETs the object (404), then creates it (201): the session's last answer decides."""
    name = f"apply-{uuid.uuid4().hex[:8]}"
    cfg = world.kubeconfig("ada", ("developers",))
    cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    world.kubectl("apply", "-f", "-", input=cm, kubeconfig=cfg)
    world.settle()
    listing = json.loads(
        world.cli("sessions", "list", "--user", "sandbox:ada", "--command", "apply", "-o", "json").stdout
    )
    [session] = [s for s in listing["items"] if s["target"] and s["target"]["name"] == name]
    assert session["outcome"] == "ok"
    assert {k: session["target"][k] for k in ("verb", "resource", "namespace")} == {
        "verb": "get",
        "resource": "configmaps",
        "namespace": "default",
    }
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
    proc = subprocess.run(
        [sys.executable, "-m", "kubegate", "audit", "verify", "--config", str(world.env.config_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "audit chain OK" in proc.stdout


def test_a_thousand_unauthenticated_requests_with_7kb_paths_barely_grow_the_store(world: World) -> None:
    """Anyone who reaches the port can send these: they are counted per client, not recorded one by one."""
    store = world.gateway.store

    async def stored() -> tuple[int, int]:
        async with store.read() as conn:
            row = (
                await conn.execute(
                    sa.select(
                        sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.length(events.c.data)), 0)
                    ).select_from(events)
                )
            ).one()
        return int(row[0]), int(row[1])

    world.settle()
    count_before, bytes_before = world.call(stored())
    target = urlsplit(world.env.server)
    assert world.env.gateway is not None
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    client = http.client.HTTPSConnection(target.hostname, target.port, context=ctx, timeout=30)
    try:
        for i in range(1000):
            client.request(
                "GET",
                f"{target.path}/api/v1/namespaces/default/pods/{i}-" + "x" * 7000,
                headers={"Kubectl-Session": f"forged-{uuid.uuid4()}", "Authorization": "Bearer nope"},
            )
            response = client.getresponse()
            assert response.status == 401 and b"kubegate refused the token" in response.read()
    finally:
        client.close()
    world.settle()
    count_after, bytes_after = world.call(stored())
    assert count_after - count_before <= 3 and bytes_after - bytes_before < 10_000  # not 1,000 x 7 KB
