"""deploy/kubernetes: each overlay, applied with kubectl to a real kube-apiserver exactly as docs/deploy.md
says, is accepted object for object, its pod passes Pod Security `restricted`, and its configuration and
RBAC are the ones kubegate documents."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubegate.config import Config
from tests.conftest import KUBECTL
from tests.deploy.conftest import OVERLAYS, ROOT, Cluster

NAMESPACE = "kubegate"


def render(overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(OVERLAYS / overlay)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@dataclass
class Applied:
    overlay: str
    objects: list[dict[str, Any]]
    stderr: str


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def applied(request: pytest.FixtureRequest, fresh_cluster: Cluster) -> Applied:
    """One overlay applied as docs/deploy.md says. Going from one overlay to the other is not an upgrade path
    (a Deployment's strategy type cannot change under server-side apply), so the Deployment goes first."""
    overlay: str = request.param
    fresh_cluster.kubectl("delete", "deployment", "kubegate", "-n", NAMESPACE, "--ignore-not-found")
    proc = fresh_cluster.kubectl(
        "apply", "--server-side", "--field-manager=kubegate-deploy", "-k", str(OVERLAYS / overlay)
    )
    return Applied(overlay, render(overlay), proc.stderr)


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def test_each_overlay_is_accepted_by_the_real_apiserver_as_is(fresh_cluster: Cluster, applied: Applied) -> None:
    objects = applied.objects
    # The namespace warns as well as enforces `restricted`: a pod template that would fail says so here.
    assert "Warning" not in applied.stderr, applied.stderr
    kinds = {o["kind"] for o in objects}
    assert kinds >= {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for obj in objects:
        stored = fresh_cluster.control.get(fresh_cluster.control.object_path(obj))
        assert stored["metadata"]["labels"].items() >= obj["metadata"]["labels"].items(), obj["kind"]
        for field in ("spec", "data", "rules", "roleRef", "subjects"):
            if field in obj:
                assert _subset(obj[field], stored[field]), f"{obj['kind']}/{obj['metadata']['name']}: {field}"


def _subset(mine: Any, stored: Any) -> bool:
    """What the manifest says is what the cluster stored (the cluster adds defaults, never changes a value)."""
    if isinstance(mine, dict):
        return isinstance(stored, dict) and all(k in stored and _subset(v, stored[k]) for k, v in mine.items())
    if isinstance(mine, list):
        return isinstance(stored, list) and len(mine) == len(stored) and all(map(_subset, mine, stored))
    return bool(mine == stored or (isinstance(mine, int | str) and str(mine) == str(stored)))


def test_the_pod_passes_pod_security_restricted(fresh_cluster: Cluster, applied: Applied) -> None:
    """Pod Security enforces on pods, not on Deployments: the Deployment's pod, created (dry run) in the
    namespace labelled enforce=restricted, is admitted; the same pod without its securityContext is not."""
    namespace = fresh_cluster.control.get(f"/api/v1/namespaces/{NAMESPACE}")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    template = only(applied.objects, "Deployment")["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kubegate-check", **template["metadata"]},
        "spec": template["spec"],
    }
    path = f"/api/v1/namespaces/{NAMESPACE}/pods?dryRun=All"
    status, answer = fresh_cluster.control.request("POST", path, pod, check=False)
    assert status == 201, answer
    loose = json.loads(json.dumps(pod))
    del loose["spec"]["securityContext"], loose["spec"]["containers"][0]["securityContext"]
    status, answer = fresh_cluster.control.request("POST", path, loose, check=False)
    assert status == 403 and 'violates PodSecurity "restricted' in answer["message"], answer
    # ...and the warning the overlay's apply did not print is printed for such a Deployment.
    deployment = json.loads(json.dumps(only(applied.objects, "Deployment")))
    deployment["metadata"]["name"] = "kubegate-loose"  # a new object: applied over kubegate, SSA would keep its fields
    deployment["spec"]["template"]["spec"] = loose["spec"]
    warned = fresh_cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "--field-manager=loose", "-f", "-", input=json.dumps(deployment)
    )
    assert 'Warning: would violate PodSecurity "restricted' in warned.stderr, warned.stderr


def test_the_clusterrole_is_deploy_rbac_yaml_bound_to_the_serviceaccount() -> None:
    documented = next(
        d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text()) if d and d["kind"] == "ClusterRole"
    )
    objects = render("postgres")
    assert only(objects, "ClusterRole")["rules"] == documented["rules"]
    assert only(objects, "ClusterRoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubegate", "namespace": NAMESPACE}
    ]
    assert only(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "kubegate"


@pytest.mark.parametrize(("overlay", "replicas", "store"), [("sqlite", 1, "configMap"), ("postgres", 3, "secret")])
def test_the_config_is_valid_and_the_overlays_differ_where_they_should(overlay: str, replicas: int, store: str) -> None:
    objects = render(overlay)
    config_map = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("kubegate-config-")
    )
    config = Config.model_validate(yaml.safe_load(config_map["data"]["kubegate.yaml"]))
    (connection,) = config.connections
    assert connection.auth.in_cluster is not None and config.listen.port == 8443
    deployment = only(objects, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == replicas
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert store in volumes["store"] and len(volumes["store"]) == 2
    assert config.store.url_file == Path("/etc/kubegate/store/url")
    assert config.ui.session_secret_file is not None and config.listen.tls is not None
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in (config.store.url_file, config.ui.session_secret_file, config.listen.tls.cert):
        assert mounts[str(path.parent)] in volumes, path
    assert mounts[str(config.state_dir)] == "state"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
