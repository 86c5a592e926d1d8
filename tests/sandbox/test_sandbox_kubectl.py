"""The real kubectl against the sandbox: reads, writes, patches, apply (client- and server-side), errors."""

from __future__ import annotations

import json

from kubegate.sandbox.cluster import SandboxCluster
from tests.sandbox.sandbox_kubectl import Kubectl

POD = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: nginx:1.27
    env: [{name: MODE, value: "one"}]
"""


def test_api_resources_lists_every_kind(admin: Kubectl) -> None:
    out = admin.run("api-resources", "-o", "name").stdout.split()
    assert set(out) >= {
        "namespaces",
        "pods",
        "secrets",
        "configmaps",
        "serviceaccounts",
        "events",
        "services",
        "deployments.apps",
        "roles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectreviews.authentication.k8s.io",
    }
    wide = admin.run("api-resources").stdout
    assert "deploy" in wide and "apps/v1" in wide and "Deployment" in wide


def test_version_reports_the_sandbox(admin: Kubectl) -> None:
    assert "Server Version: v1.37" in admin.run("version").stdout


def test_standard_namespaces_exist(admin: Kubectl) -> None:
    out = admin.run("get", "namespaces").stdout
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    for name in ("default", "kube-system", "kube-public"):
        assert any(line.split()[:2] == [name, "Active"] for line in out.splitlines())


def test_get_table_and_yaml(admin: Kubectl, namespace: str) -> None:
    admin.run("apply", "-n", namespace, "-f", "-", stdin=POD)
    table = admin.run("get", "pods", "-n", namespace, "-o", "wide").stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    assert table[1].split()[:4] == ["web", "1/1", "Running", "0"]
    pod = json.loads(admin.run("get", "pod", "web", "-n", namespace, "-o", "json").stdout)
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["ready"] is True
    assert pod["status"]["podIP"] in table[1]
    assert "kind: Pod" in admin.run("get", "pod", "web", "-n", namespace, "-o", "yaml").stdout


def test_apply_twice_sends_a_strategic_patch(admin: Kubectl, sandbox: SandboxCluster, namespace: str) -> None:
    assert "pod/web created" in admin.run("apply", "-n", namespace, "-f", "-", stdin=POD).stdout
    before = len(sandbox.requests)
    changed = POD.replace('value: "one"', 'value: "two"')
    assert "pod/web configured" in admin.run("apply", "-n", namespace, "-f", "-", stdin=changed).stdout
    patches = [r for r in sandbox.requests[before:] if r.method == "PATCH"]
    assert [p.headers["Content-Type"] for p in patches] == ["application/strategic-merge-patch+json"]
    env = admin.run("get", "pod", "web", "-n", namespace, "-o", "jsonpath={.spec.containers[0].env}").stdout
    assert json.loads(env) == [{"name": "MODE", "value": "two"}]


def test_server_side_apply_owns_fields_and_reports_conflicts(admin: Kubectl, namespace: str) -> None:
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1', b: '2'}\n"
    assert "serverside-applied" in admin.run("apply", "--server-side", "-n", namespace, "-f", "-", stdin=config).stdout
    admin.run("apply", "--server-side", "-n", namespace, "-f", "-", stdin=config.replace("b: '2'", "c: '3'"))
    cm = json.loads(admin.run("get", "cm", "settings", "-n", namespace, "-o", "json", "--show-managed-fields").stdout)
    assert cm["data"] == {"a": "1", "c": "3"}  # b was dropped: only kubectl owned it
    assert cm["metadata"]["managedFields"][0]["manager"] == "kubectl"
    assert cm["metadata"]["managedFields"][0]["operation"] == "Apply"

    admin.run("patch", "cm", "settings", "-n", namespace, "-p", '{"data":{"a":"9"}}')
    refused = admin.run("apply", "--server-side", "-n", namespace, "-f", "-", stdin=config, check=False)
    assert refused.returncode != 0
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using v1: .data.a' in refused.stderr
    admin.run("apply", "--server-side", "--force-conflicts", "-n", namespace, "-f", "-", stdin=config)
    data = admin.run("get", "cm", "settings", "-n", namespace, "-o", "jsonpath={.data}").stdout
    assert json.loads(data) == {"a": "1", "b": "2"}


def test_server_side_apply_creates_when_absent(admin: Kubectl, namespace: str) -> None:
    out = admin.run("apply", "--server-side", "-n", namespace, "-f", "-", stdin=POD).stdout
    assert "pod/web serverside-applied" in out
    assert admin.run("get", "pod", "web", "-n", namespace, "-o", "name").stdout.strip() == "pod/web"


def test_patch_strategic_merge_and_json(admin: Kubectl, namespace: str) -> None:
    admin.run("apply", "-n", namespace, "-f", "-", stdin=POD)
    admin.run(
        "patch",
        "pod",
        "web",
        "-n",
        namespace,
        "-p",
        '{"spec":{"containers":[{"name":"app","env":[{"name":"EXTRA","value":"x"}]}]}}',
    )
    env = admin.run("get", "pod", "web", "-n", namespace, "-o", "jsonpath={.spec.containers[0].env}").stdout
    assert json.loads(env) == [{"name": "MODE", "value": "one"}, {"name": "EXTRA", "value": "x"}]
    admin.run("patch", "pod", "web", "-n", namespace, "--type", "merge", "-p", '{"metadata":{"labels":{"app":null}}}')
    admin.run(
        "patch",
        "pod",
        "web",
        "-n",
        namespace,
        "--type",
        "json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/tier","value":"front"}]',
    )
    labels = admin.run("get", "pod", "web", "-n", namespace, "-o", "jsonpath={.metadata.labels}").stdout
    assert json.loads(labels) == {"tier": "front"}


def test_delete_removes_the_object(admin: Kubectl, namespace: str) -> None:
    admin.run("create", "configmap", "gone", "-n", namespace, "--from-literal=k=v")
    assert 'configmap "gone" deleted' in admin.run("delete", "configmap", "gone", "-n", namespace).stdout
    missing = admin.run("get", "configmap", "gone", "-n", namespace, check=False)
    assert missing.stderr.strip() == 'Error from server (NotFound): configmaps "gone" not found'


def test_typed_creates_send_protobuf_and_land(admin: Kubectl, sandbox: SandboxCluster, namespace: str) -> None:
    before = len(sandbox.requests)
    admin.run("create", "deployment", "api", "-n", namespace, "--image=nginx", "--replicas=3")
    admin.run("create", "secret", "generic", "creds", "-n", namespace, "--from-literal=password=hunter2")
    posts = [r for r in sandbox.requests[before:] if r.method == "POST"]
    assert {r.headers["Content-Type"] for r in posts} == {"application/vnd.kubernetes.protobuf"}
    row = admin.run("get", "deploy", "api", "-n", namespace, "--no-headers").stdout.split()
    assert row[:4] == ["api", "3/3", "3", "3"]
    secret = json.loads(admin.run("get", "secret", "creds", "-n", namespace, "-o", "json").stdout)
    assert secret["data"] == {"password": "aHVudGVyMg=="} and secret["type"] == "Opaque"
    assert "deployment.apps/api scaled" in admin.run("scale", "deploy", "api", "-n", namespace, "--replicas=1").stdout


def test_errors_are_worded_like_kube(admin: Kubectl, namespace: str) -> None:
    admin.run("create", "configmap", "twice", "-n", namespace)
    again = admin.run("create", "configmap", "twice", "-n", namespace, check=False)
    assert 'configmaps "twice" already exists' in again.stderr
    bad = admin.run("run", "Bad_Name", "--image=x", "-n", namespace, check=False)
    assert 'The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123' in bad.stderr
    assert (
        admin.run("get", "deploy", "nope", "-n", namespace, check=False).stderr.strip()
        == 'Error from server (NotFound): deployments.apps "nope" not found'
    )
