"""Masking end to end: secret values never reach kubectl or the recording, in any output format."""

from __future__ import annotations

import base64
import json
import sqlite3
import ssl
import time
import urllib.request
import uuid

import pytest

from kubegate.masking.marker import MARKER, MARKER_B64
from tests.conftest import World

pytestmark = pytest.mark.e2e


@pytest.fixture
def secret(world: World) -> tuple[str, str, str]:
    ns = world.namespace("mask")
    value = f"s3cr3t-{uuid.uuid4().hex}"
    world.kubectl("create", "secret", "generic", "db", "-n", ns, f"--from-literal=password={value}")
    return ns, "db", value


def recorded_text(world: World) -> str:
    assert world.env.config is not None
    db = world.env.config.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        return "\n".join(r[0] for r in conn.execute("SELECT data FROM events"))


def assert_nowhere(world: World, value: str, *outputs: str) -> None:
    encoded = base64.b64encode(value.encode()).decode()
    for out in outputs:
        assert value not in out and encoded not in out
    world.settle()
    text = recorded_text(world)
    assert text  # the recording exists: an empty store would hide nothing
    assert value not in text and encoded not in text


def test_get_secret_yaml_json_and_jsonpath_show_the_marker(world: World, secret: tuple[str, str, str]) -> None:
    ns, name, value = secret
    as_yaml = world.kubectl("get", "secret", name, "-n", ns, "-o", "yaml").stdout
    as_json = json.loads(world.kubectl("get", "secret", name, "-n", ns, "-o", "json").stdout)
    assert as_json["data"] == {"password": MARKER_B64} and as_json["metadata"]["name"] == name
    path = world.kubectl("get", "secret", name, "-n", ns, "-o", "jsonpath={.data.password}").stdout
    assert base64.b64decode(path).decode() == MARKER
    table = world.kubectl("get", "secrets", "-A").stdout
    assert name in table and "Opaque" in table
    assert_nowhere(world, value, as_yaml, json.dumps(as_json), table)


def test_a_watch_streams_masked_objects(world: World, secret: tuple[str, str, str]) -> None:
    ns, _, value = secret
    mark = world.control.audit_mark()
    watcher = world.popen("get", "secrets", "-n", ns, "-w", "-o", "json")
    try:
        world.control.wait_for_event(
            lambda e: e.stage == "RequestReceived" and e.verb == "watch" and f"/namespaces/{ns}/secrets" in e.uri, mark
        )
        later = f"later-{uuid.uuid4().hex}"
        world.kubectl("create", "secret", "generic", "late", "-n", ns, f"--from-literal=token={later}")
        seen = ""
        deadline = time.monotonic() + 20
        assert watcher.stdout is not None
        while time.monotonic() < deadline and '"late"' not in seen:
            seen += watcher.stdout.readline()
        assert '"late"' in seen and MARKER_B64 in seen
    finally:
        watcher.kill()
    assert_nowhere(world, value, seen)
    assert_nowhere(world, later, seen)


def test_apply_of_a_secret_answers_masked(world: World) -> None:
    ns = world.namespace("mask")
    value = f"applied-{uuid.uuid4().hex}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app", "namespace": ns},
        "stringData": {"token": value},
    }
    out = world.kubectl("apply", "-f", "-", "-o", "json", input=json.dumps(manifest)).stdout
    returned = json.loads(out)
    assert returned["data"] == {"token": MARKER_B64}
    again = world.kubectl("apply", "-f", "-", input=json.dumps(manifest)).stdout
    assert "unchanged" in again or "configured" in again
    assert_nowhere(world, value, out)


def test_create_token_is_masked(world: World) -> None:
    out = world.kubectl("create", "token", "default", "-n", "default").stdout.strip()
    assert out == MARKER


def test_logs_follow_masks_a_key_split_across_chunks(world: World) -> None:
    ns = world.namespace("mask")
    world.pod(ns)
    key = "AKIA" + uuid.uuid4().hex[:16].upper()
    mark = world.control.audit_mark()
    follower = world.popen("logs", "-f", "app", "-n", ns)
    try:
        world.control.wait_for_event(lambda e: e.stage == "ResponseStarted" and "/pods/app/log" in e.uri, mark)
        world.env.cluster.append_log(ns, "app", f"starting with key {key[:9]}", partial=True)
        time.sleep(0.3)  # not a wait: the two halves must leave the kubelet as two chunks
        world.env.cluster.append_log(ns, "app", f"{key[9:]} done\n")
        assert follower.stdout is not None
        line = follower.stdout.readline()
    finally:
        follower.kill()
    assert "starting with" in line and "done" in line
    assert key not in line and key[:9] + key[9:] not in line
    assert_nowhere(world, key, line)


def test_protobuf_is_never_passed_on_unmasked(world: World, secret: tuple[str, str, str]) -> None:
    ns, name, value = secret
    assert world.env.gateway is not None
    ctx = ssl.create_default_context(cafile=str(world.env.gateway.ca_file))
    req = urllib.request.Request(
        f"{world.env.server}/api/v1/namespaces/{ns}/secrets/{name}",
        headers={
            "Authorization": f"Bearer {world.token()}",
            "Accept": "application/vnd.kubernetes.protobuf, application/json",
            "Accept-Encoding": "gzip",
        },
    )
    with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
        body = resp.read()
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.headers.get("Content-Encoding") is None
    assert json.loads(body)["data"]["password"] == MARKER_B64
    assert_nowhere(world, value, body.decode())


def test_kubectl_is_told_what_was_masked(world: World, secret: tuple[str, str, str]) -> None:
    ns, name, _ = secret
    out = world.kubectl("get", "secret", name, "-n", ns, "-o", "yaml")
    assert "Warning: kubegate masked 1 value in this response (rule developers-work-everywhere:" in out.stderr
    assert f"they read {MARKER}" in out.stderr
    plain = world.kubectl("get", "namespace", ns, "-o", "yaml")
    assert "kubegate masked" not in plain.stderr, "nothing masked, nothing said"


def test_the_values_masked_are_counted_by_profile_in_the_metrics(world: World, secret: tuple[str, str, str]) -> None:
    ns, name, _ = secret
    world.kubectl("create", "secret", "generic", "two", "-n", ns, "--from-literal=a=x1", "--from-literal=b=x2")

    def masked() -> float:
        registry = world.gateway.metrics.registry
        return registry.get_sample_value("kubegate_masked_values_total", {"profile": "secret-values"}) or 0.0

    before = masked()
    world.kubectl("get", "secret", name, "-n", ns, "-o", "json")
    world.settle()
    assert masked() - before == 1
    world.kubectl("get", "secrets", "-n", ns, "-o", "json")  # one LIST: db's value and two's two values
    world.settle()
    assert masked() - before == 4
    world.kubectl("get", "namespace", ns, "-o", "json")  # nothing to mask: nothing counted
    world.settle()
    assert masked() - before == 4
