"""`kubegate kubeconfig` writes what a CI job needs: kubectl then works through kubegate with its token, against
the real kube-apiserver (whose answer to `auth whoami` is the judge of who it served)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from kubegate.sandbox.envtest import GATEWAY_USER
from tests.conftest import KUBECTL, World, kubectl_env


def kubegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubegate", *args], capture_output=True, text=True, timeout=60)


def test_a_ci_kubeconfig_reads_the_token_from_the_environment_and_kubectl_works(world: World, tmp_path: Path) -> None:
    assert world.env.gateway is not None
    out = tmp_path / "kubeconfig"
    connection = world.env.connection
    proc = kubegate(
        "kubeconfig",
        "--server",
        world.env.gateway.url,
        "--connection",
        connection,
        "--ca",
        str(world.env.gateway.ca_file),
        "--from-env",
        "CI_OIDC_TOKEN",
        "--namespace",
        "kube-public",
        "--file",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["clusters"][0]["cluster"]["server"] == f"{world.env.gateway.url}/k8s/{connection}"
    assert doc["contexts"][0]["context"]["namespace"] == "kube-public"
    user = doc["users"][0]["user"]["exec"]
    assert user["args"][-3:] == ["token", "--from-env", "CI_OIDC_TOKEN"]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    env = {**kubectl_env(), "CI_OIDC_TOKEN": world.token("ci-job", ("developers",))}
    mark = world.control.audit_mark()
    who = subprocess.run(
        [KUBECTL, f"--kubeconfig={out}", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert who.returncode == 0, who.stderr
    assert who.stdout == "sandbox:ci-job"  # the real apiserver's answer: it served the verified identity
    reviews = world.served("/apis/authentication.k8s.io/v1/selfsubjectreviews", mark)
    assert [e.uri for e in reviews if "dryRun" not in e.uri] == ["/apis/authentication.k8s.io/v1/selfsubjectreviews"]
    assert all(
        e.user == GATEWAY_USER and (e.impersonated or {}).get("username") == "sandbox:ci-job" for e in reviews
    ), [e.raw for e in reviews]


def test_github_actions_kubeconfig_and_a_missing_source(tmp_path: Path) -> None:
    proc = kubegate(
        "kubeconfig",
        "--server",
        "https://kubegate.example.com",
        "--connection",
        "eks-dev",
        "--github-actions",
        "--audience",
        "kubegate-prod",
    )
    assert proc.returncode == 0
    args = yaml.safe_load(proc.stdout)["users"][0]["user"]["exec"]["args"]
    assert args[-4:] == ["token", "--github-actions", "--audience", "kubegate-prod"]
    missing = kubegate("kubeconfig", "--server", "https://k", "--connection", "c")
    assert missing.returncode == 2 and "choose a token source" in missing.stderr
    unwritable = kubegate(
        "kubeconfig",
        "--server",
        "https://k",
        "--connection",
        "c",
        "--from-env",
        "T",
        "--file",
        str(tmp_path / "no" / "kc"),
    )
    assert unwritable.returncode == 1
    assert unwritable.stderr == (
        f"kubegate kubeconfig: cannot write {tmp_path / 'no' / 'kc'}: No such file or directory\n"
    )
