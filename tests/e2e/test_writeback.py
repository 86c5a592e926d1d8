"""Masked values written back through real kubectl keep what the cluster stores, and never leak.

Every test reads an object through kubegate (its secret values masked), writes it back the way a user or
an agent would, and then asks the real cluster, as its admin, what it holds now.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubegate.masking.marker import MARKER, MARKER_B64
from tests.conftest import KUBECTL, World, kubectl_env
from tests.e2e.test_masking import assert_nowhere

pytestmark = pytest.mark.e2e


@pytest.fixture
def secret(world: World) -> tuple[str, str, str]:
    ns = world.namespace("wb")
    value = f"s3cr3t-{uuid.uuid4().hex}"
    world.control.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": ns},
            "data": {"password": b64(value), "user": b64("app")},
        }
    )
    return ns, "db", value


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def stored(world: World, ns: str, kind: str, name: str) -> dict[str, Any]:
    group = "apis/apps/v1" if kind == "deployments" else "api/v1"
    obj: dict[str, Any] = world.control.get(f"/{group}/namespaces/{ns}/{kind}/{name}")
    return obj


def masked_yaml(world: World, ns: str, what: str) -> str:
    out = world.kubectl("get", what, "-n", ns, "-o", "yaml").stdout
    assert MARKER_B64 in out or MARKER in out, "the object must come back masked for this test to mean anything"
    return out


def relabel(manifest: str, label: str = "touched") -> str:
    doc = yaml.safe_load(manifest)
    doc["metadata"].setdefault("labels", {})[label] = "yes"
    return yaml.safe_dump(doc)


def test_get_then_replace_keeps_the_stored_secret(world: World, secret: tuple[str, str, str]) -> None:
    ns, name, value = secret
    out = world.kubectl("replace", "-f", "-", "-o", "json", input=relabel(masked_yaml(world, ns, f"secret/{name}")))
    assert json.loads(out.stdout)["data"]["password"] == MARKER_B64, "the write's answer is masked too"
    now = stored(world, ns, "secrets", name)
    assert now["data"] == {"password": b64(value), "user": b64("app")}
    assert now["metadata"]["labels"] == {"touched": "yes"}
    assert_nowhere(world, value, out.stdout)


def test_get_then_apply_twice_keeps_the_stored_secret(world: World, secret: tuple[str, str, str]) -> None:
    ns, name, value = secret
    for label in ("first", "second"):  # the second apply reads the masked last-applied annotation back
        world.kubectl("apply", "-f", "-", input=relabel(masked_yaml(world, ns, f"secret/{name}"), label))
    now = stored(world, ns, "secrets", name)
    assert now["data"]["password"] == b64(value)
    assert now["metadata"]["labels"] == {"first": "yes", "second": "yes"}
    last_applied = json.loads(now["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["data"]["password"] == b64(value), "the annotation holds the value kubectl applied"
    assert_nowhere(world, value)


def test_server_side_apply_of_the_masked_object_keeps_the_stored_secret(
    world: World, secret: tuple[str, str, str]
) -> None:
    ns, name, value = secret
    manifest = relabel(masked_yaml(world, ns, f"secret/{name}"))
    world.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    now = stored(world, ns, "secrets", name)
    assert now["data"]["password"] == b64(value) and now["metadata"]["labels"] == {"touched": "yes"}


def test_merge_patch_of_masked_data_keeps_the_stored_secret(world: World, secret: tuple[str, str, str]) -> None:
    ns, name, value = secret
    patch = {"data": {"password": MARKER_B64, "extra": b64("new")}, "metadata": {"labels": {"p": "q"}}}
    world.kubectl("patch", "secret", name, "-n", ns, "--type", "merge", "-p", json.dumps(patch))
    now = stored(world, ns, "secrets", name)
    assert now["data"] == {"password": b64(value), "user": b64("app"), "extra": b64("new")}


def test_edit_with_an_editor_keeps_the_stored_secret(
    world: World, secret: tuple[str, str, str], tmp_path: Path
) -> None:
    ns, name, value = secret
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, yaml\n"
        "p = sys.argv[1]\n"
        "doc = yaml.safe_load(open(p))\n"
        "doc['metadata'].setdefault('labels', {})['edited'] = 'yes'\n"
        "open(p, 'w').write(yaml.safe_dump(doc))\n"
    )
    env = {**kubectl_env(), "KUBE_EDITOR": f"{sys.executable} {editor}"}
    proc = subprocess.run(
        [KUBECTL, f"--kubeconfig={world.kubeconfig()}", "edit", "--save-config", f"secret/{name}", "-n", ns],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    now = stored(world, ns, "secrets", name)
    assert now["data"]["password"] == b64(value) and now["metadata"]["labels"] == {"edited": "yes"}
    last_applied = now["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert '"edited":"yes"' in last_applied and b64(value) in last_applied


def test_a_masked_env_value_survives_apply_and_cannot_be_renamed_out(world: World) -> None:
    ns = world.namespace("wb")
    token = f"ghp_{uuid.uuid4().hex}{uuid.uuid4().hex[:4]}"
    world.control.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": ns},
            "spec": {
                "selector": {"matchLabels": {"app": "api"}},
                "template": {
                    "metadata": {"labels": {"app": "api"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "api",
                                "image": "busybox",
                                "env": [{"name": "API_TOKEN", "value": token}, {"name": "MODE", "value": "plain"}],
                            }
                        ]
                    },
                },
            },
        }
    )
    manifest = masked_yaml(world, ns, "deployment/api")
    world.kubectl("apply", "-f", "-", input=relabel(manifest))
    env = stored(world, ns, "deployments", "api")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "API_TOKEN", "value": token}, {"name": "MODE", "value": "plain"}]

    renamed = manifest.replace("name: API_TOKEN", "name: LEAKED")
    refused = world.kubectl("apply", "-f", "-", input=renamed, check=False)
    assert refused.returncode != 0
    assert "kubegate refused this write" in refused.stderr and "masked value" in refused.stderr
    env = stored(world, ns, "deployments", "api")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["API_TOKEN", "MODE"]

    shifted = [
        {"op": "add", "path": "/spec/template/spec/containers/0/env/0", "value": {"name": "LEAKED", "value": "x"}},
        {"op": "replace", "path": "/spec/template/spec/containers/0/env/1/value", "value": MARKER},
    ]
    out = world.kubectl(
        "patch", "deployment", "api", "-n", ns, "--type", "json", "-p", json.dumps(shifted), check=False
    )
    assert out.returncode != 0 and "separate patch" in out.stderr
    assert_nowhere(world, token, out.stdout, out.stderr)


@pytest.mark.parametrize("write", ["new-key", "new-object", "string-data", "other-object"])
def test_a_marker_that_cannot_be_restored_is_refused(world: World, secret: tuple[str, str, str], write: str) -> None:
    ns, name, value = secret
    if write == "new-key":
        args = ["patch", "secret", name, "-n", ns, "--type", "merge", "-p", json.dumps({"data": {"copy": MARKER_B64}})]
        manifest = None
    else:
        doc = yaml.safe_load(masked_yaml(world, ns, f"secret/{name}"))
        for key in ("resourceVersion", "uid", "creationTimestamp"):
            doc["metadata"].pop(key, None)
        if write == "new-object":
            doc["metadata"]["name"] = "db-copy"
        elif write == "string-data":
            doc["stringData"] = {"password": MARKER}
        else:
            world.control.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "other", "namespace": ns},
                    "data": {"user": b64("x")},
                }
            )
            doc["metadata"]["name"] = "other"
        args, manifest = ["apply", "-f", "-"], yaml.safe_dump(doc)
    out = world.kubectl(*args, input=manifest, check=False)
    assert out.returncode != 0, out.stdout
    assert "kubegate refused this write" in out.stderr and "masked value" in out.stderr, out.stderr
    assert "stringData" in out.stderr, "the refusal says how to set a real value"
    assert stored(world, ns, "secrets", name)["data"]["password"] == b64(value)
    for other in ("db-copy", "other"):
        found = world.control.request("GET", f"/api/v1/namespaces/{ns}/secrets/{other}", check=False)[1]
        assert b64(value) not in json.dumps(found), "no other object ever receives the value"


@pytest.mark.parametrize("op", ["copy", "move", "test"])
def test_a_json_patch_that_reads_a_masked_path_is_refused(world: World, secret: tuple[str, str, str], op: str) -> None:
    ns, name, value = secret
    if op == "test":
        patch = [{"op": "test", "path": "/data/password", "value": b64(value)}]
    else:
        patch = [{"op": op, "from": "/data/password", "path": "/metadata/annotations/leak"}]
    out = world.kubectl("patch", "secret", name, "-n", ns, "--type", "json", "-p", json.dumps(patch), check=False)
    assert out.returncode != 0 and "reads a value your masks hide" in out.stderr, out.stderr
    now = stored(world, ns, "secrets", name)
    assert now["data"]["password"] == b64(value) and "leak" not in (now["metadata"].get("annotations") or {})


def test_a_protobuf_write_holding_a_marker_is_refused(world: World) -> None:
    ns = world.namespace("wb")
    out = world.kubectl(
        "create", "secret", "generic", "copied", "-n", ns, f"--from-literal=password={MARKER}", check=False
    )
    assert out.returncode != 0 and "kubegate refused this write" in out.stderr, out.stderr
    assert not world.control.exists(f"/api/v1/namespaces/{ns}/secrets/copied")
