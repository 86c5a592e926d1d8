"""kubectl command lines as the requests kubectl sends."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kubegate.policy.kubectl import KubectlParseError, parse_kubectl


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("kubectl delete ns prod", ("delete", "", "namespaces", "prod", "prod")),
        ("get pods -n pr-1", ("list", "", "pods", "pr-1", "")),
        ("get po web --namespace=pr-1", ("get", "", "pods", "pr-1", "web")),
        ("get secrets -A", ("list", "", "secrets", "", "")),
        ("get deploy -w -n x", ("watch", "apps", "deployments", "x", "")),
        ("get pod/web -w -n x", ("watch", "", "pods", "x", "web")),
        ("get deployments.apps web -n x", ("get", "apps", "deployments", "x", "web")),
        ("describe cm app -n x", ("get", "", "configmaps", "x", "app")),
        ("get --raw /api/v1/nodes/n1/proxy/stats", ("get", "", "nodes/proxy", "", "n1")),
        ("delete pods --all -n x", ("deletecollection", "", "pods", "x", "")),
        ("delete deploy/web -n x", ("delete", "apps", "deployments", "x", "web")),
        ("edit cm aws-auth -n kube-system", ("patch", "", "configmaps", "kube-system", "aws-auth")),
        ("patch sa default -p {} -n x", ("patch", "", "serviceaccounts", "x", "default")),
        ("label no n1 a=b", ("patch", "", "nodes", "", "n1")),
        ("scale deploy web --replicas=3 -n x", ("patch", "apps", "deployments/scale", "x", "web")),
        ("rollout restart deploy/web -n x", ("patch", "apps", "deployments", "x", "web")),
        ("rollout status deploy/web -n x", ("get", "apps", "deployments", "x", "web")),
        ("cordon n1", ("patch", "", "nodes", "", "n1")),
        ("exec -it web -n prod -- sh -c 'echo hi'", ("create", "", "pods/exec", "prod", "web")),
        ("attach web -n prod", ("create", "", "pods/attach", "prod", "web")),
        ("logs web -f -c app -n x", ("get", "", "pods/log", "x", "web")),
        ("port-forward pod/web 8080:80 -n x", ("create", "", "pods/portforward", "x", "web")),
        ("debug web -n prod --image=busybox -it", ("patch", "", "pods/ephemeralcontainers", "prod", "web")),
        ("debug node/n1 --image=busybox", ("create", "", "pods", "default", "")),
        ("create ns pr-9", ("create", "", "namespaces", "", "")),
        (
            "create clusterrolebinding x --clusterrole=view --user=u",
            ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
        ),
        ("auth can-i get pods", ("create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "")),
        ("top pods -n x", ("list", "metrics.k8s.io", "pods", "x", "")),
    ],
)
def test_commands(command: str, expected: tuple[str, str, str, str, str]) -> None:
    info = parse_kubectl(shlex.split(command)).info
    assert (info.verb, info.api_group, info.resource_path, info.namespace, info.name) == expected


def test_exec_and_cp_commands() -> None:
    assert parse_kubectl(shlex.split("exec web -c app -- sh -c 'rm -rf /'")).info.command == ("sh", "-c", "rm -rf /")
    assert parse_kubectl(shlex.split("exec web -c app -- ls")).info.container == "app"
    out = parse_kubectl(shlex.split("cp prod/web:/var/log/app.log ./app.log")).info
    assert (out.verb, out.resource_path, out.namespace, out.command) == (
        "create",
        "pods/exec",
        "prod",
        ("tar", "cf", "-", "/var/log/app.log"),
    )
    into = parse_kubectl(shlex.split("cp ./x web:/tmp/x -n pr-2 -c app")).info
    assert (into.namespace, into.name, into.command, into.container) == (
        "pr-2",
        "web",
        ("tar", "-xmf", "-", "-C", "/tmp"),
        "app",
    )


def test_objects_from_files_and_generators(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: pr-3}\nspec: {containers: [{name: a, image: x}]}\n"
    )
    req = parse_kubectl(["kubectl", "apply", "-f", str(manifest)])
    assert (req.info.verb, req.info.resource, req.info.namespace, req.obj["metadata"]["name"]) == (
        "create",
        "pods",
        "pr-3",
        "p",
    )
    assert parse_kubectl(["replace", "-f", str(manifest)]).info.verb == "update"
    assert parse_kubectl(["delete", "-f", str(manifest)]).info.name == "p"
    run = parse_kubectl(shlex.split("run bad --image=docker.io/x -n pr-1"))
    assert run.obj["spec"]["containers"][0]["image"] == "docker.io/x"
    rb = parse_kubectl(shlex.split("create rolebinding rb --clusterrole=cluster-admin --user=x -n pr-1"))
    assert rb.obj["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "cluster-admin",
    }


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("", "give a kubectl command"),
        ("frobnicate pods", "explain does not know `kubectl frobnicate`"),
        ("exec web", "needs the command after --"),
        ("get", "needs a resource type"),
        ("delete", "needs TYPE NAME"),
        ("cp a b", "one side written [NAMESPACE/]POD:PATH"),
        ("apply -f -", "cannot read -f - (stdin)"),
        ("get pods -n", "-n needs a value"),
    ],
)
def test_errors_say_what_to_write(command: str, message: str) -> None:
    with pytest.raises(KubectlParseError) as exc:
        parse_kubectl(shlex.split(command))
    assert message in str(exc.value)
