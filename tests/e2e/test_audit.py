"""Audit outside the gateway, end to end through real kubectl: an access-log line per request, the
requests of a `kubectl apply` exported as audit.k8s.io/v1 Events carrying kubegate's decision, and the
approval that let a held kubectl request through exported as the reviewer's own event."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from kubegate.audit.accesslog import ACCESS_LOGGER
from kubegate.audit.config import SinkConfig
from kubegate.audit.export import Exporter
from kubegate.audit.sinks import FileSink
from tests.audit.schema import assert_audit_event
from tests.conftest import World
from tests.e2e.test_approvals import _namespace, delete_namespace, pending_request, requests_cli

pytestmark = pytest.mark.e2e


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(record.getMessage()))


def apply(world: World, name: str, token: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"note": "hello"},
    }
    world.kubectl(
        "apply",
        "-f",
        "-",
        input=orjson.dumps(manifest).decode(),
        kubeconfig=world.kubeconfig("carol", ("developers",), token=token),
    )
    world.settle()


def test_every_kubectl_request_is_one_access_log_line_without_the_token(world: World) -> None:
    name = f"log-{uuid.uuid4().hex[:8]}"
    token = world.token("carol", ("developers",))
    lines = Lines()
    logging.getLogger(ACCESS_LOGGER).addHandler(lines)
    try:
        apply(world, name, token)
    finally:
        logging.getLogger(ACCESS_LOGGER).removeHandler(lines)
    mine = [line for line in lines.lines if line["identity"] == "sandbox:carol"]
    writes = [line for line in mine if line["name"] == name and line["verb"] in ("create", "patch")]
    assert len(writes) == 1, mine
    write = writes[0]
    assert (write["connection"], write["resource"], write["namespace"]) == ("envtest", "configmaps", "default")
    assert (write["decision"], write["rule"], write["status"]) == ("allow", "developers-work-everywhere", 201)
    assert write["session"] and write["bytes"] > 0 and write["duration_ms"] > 0

    async def request_events(session: str) -> int:
        import sqlalchemy as sa

        from kubegate.store.tables import events

        async with world.gateway.store.read() as conn:
            return (
                await conn.execute(
                    sa.select(sa.func.count()).where(events.c.session_id == session, events.c.type == "request")
                )
            ).scalar_one()

    in_session = [line for line in mine if line["session"] == write["session"]]
    assert len(in_session) == world.call(request_events(write["session"]))  # one line per request, no more
    assert token not in orjson.dumps(lines.lines).decode()


def export(world: World, path: Path, name: str) -> list[dict[str, Any]]:
    """Everything the world's store holds, through a new file sink, each Event checked against the schema."""
    exporter = Exporter(world.gateway.store, FileSink(SinkConfig(name=name, type="file", path=path)), batch_max=2000)

    async def drain() -> None:
        while await exporter.step():
            pass

    world.call(drain())
    exported = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    for event in exported:
        assert_audit_event(event)
    return exported


def test_a_kubectl_apply_is_exported_as_kubernetes_audit_events(world: World, tmp_path: Path) -> None:
    name = f"exp-{uuid.uuid4().hex[:8]}"
    token = world.token("carol", ("developers",))
    apply(world, name, token)
    exported = export(world, tmp_path / "audit.jsonl", f"e2e-{name}")
    ours = [e for e in exported if e.get("objectRef", {}).get("name") == name]
    created = [e for e in ours if e["verb"] == "create" and e["stage"] == "ResponseComplete"]
    assert len(created) == 1, ours
    event = created[0]
    assert event["user"]["username"] == "sandbox:carol" and "developers" in event["user"]["groups"]
    assert event["objectRef"] == {"resource": "configmaps", "namespace": "default", "name": name, "apiVersion": "v1"}
    assert event["responseStatus"]["code"] == 201
    notes = event["annotations"]
    assert notes["kubegate.dev/decision"] == "allow" and notes["authorization.k8s.io/decision"] == "allow"
    assert notes["kubegate.dev/rule"] == "developers-work-everywhere"
    assert "secret-values" in notes["kubegate.dev/masks"].split(",")
    received = [e for e in ours if e["auditID"] == event["auditID"] and e["stage"] == "RequestReceived"]
    assert len(received) == 1 and event["userAgent"].startswith("kubectl/")
    assert token not in (tmp_path / "audit.jsonl").read_text()


def test_who_approved_a_held_kubectl_request_is_exported_as_their_own_audit_event(world: World, tmp_path: Path) -> None:
    name = _namespace(world)
    kubectl = delete_namespace(world, name)
    try:
        request = pending_request(world, f"namespaces {name}", kubectl)
        approved = requests_cli(world, "approve", request["id"], "--comment", "cleanup of a finished PR")
        assert approved.returncode == 0, approved.stderr
        assert kubectl.communicate(timeout=60)[0] == f'namespace "{name}" deleted\n'
    finally:
        kubectl.kill()
    world.settle()
    exported = export(world, tmp_path / "audit.jsonl", f"e2e-{name}")
    about = [e for e in exported if e["annotations"].get("kubegate.dev/approval") == request["id"]]
    by_event = {e["annotations"]["kubegate.dev/event"]: e for e in about}
    asked, decided = by_event["access_request"], by_event["approval"]
    assert asked["user"]["username"] == "sandbox:alice" and asked["verb"] == "create"
    assert asked["annotations"]["kubegate.dev/target"] == f"delete namespaces {name}"
    assert decided["user"]["username"] == "sandbox:bob" and "platform-oncall" in decided["user"]["groups"]
    assert decided["requestURI"] == f"/api/v1/requests/{request['id']}/approve"
    assert decided["annotations"]["kubegate.dev/review"] == "approved"
    assert decided["annotations"]["kubegate.dev/requester"] == "sandbox:alice"
    assert decided["annotations"]["kubegate.dev/comment"] == "cleanup of a finished PR"
    deleted = [
        e
        for e in about
        if e["verb"] == "delete" and e["stage"] == "ResponseComplete" and e["objectRef"].get("name") == name
    ]
    assert len(deleted) == 1 and deleted[0]["responseStatus"]["code"] == 200  # the request it let through
    assert deleted[0]["stageTimestamp"] > decided["stageTimestamp"]
