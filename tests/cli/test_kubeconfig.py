"""`kubegate kubeconfig` writes what a CI job needs: kubectl then works through kubegate with its token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import KUBECTL, World


def kubegate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubegate", *args], capture_output=True, text=True, timeout=60)


def test_a_ci_kubeconfig_reads_the_token_from_the_environment_and_kubectl_works(world: World,
                                                                                 tmp_path: Path) -> None:
    assert world.env.gateway is not None
    out = tmp_path / "kubeconfig"
    proc = kubegate("kubeconfig", "--server", world.env.gateway.url, "--connection", "sandbox",
                    "--ca", str(world.env.gateway.ca_file), "--token-env", "CI_OIDC_TOKEN",
                    "--namespace", "kube-public", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(out.read_text())
    assert doc["clusters"][0]["cluster"]["server"] == f"{world.env.gateway.url}/k8s/sandbox"
    assert doc["contexts"][0]["context"]["namespace"] == "kube-public"
    user = doc["users"][0]["user"]["exec"]
    assert user["args"][-3:] == ["token", "--from-env", "CI_OIDC_TOKEN"]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    env = {**os.environ, "CI_OIDC_TOKEN": world.token("ci-job", ("developers",))}
    who = subprocess.run([KUBECTL, f"--kubeconfig={out}", "auth", "whoami", "-o",
                          "jsonpath={.status.userInfo.username}"], capture_output=True, text=True, timeout=60, env=env)
    assert who.returncode == 0, who.stderr
    assert who.stdout == "sandbox:ci-job"


def test_github_actions_kubeconfig_and_a_missing_source(tmp_path: Path) -> None:
    proc = kubegate("kubeconfig", "--server", "https://kubegate.example.com", "--connection", "eks-dev",
                    "--github-actions", "--audience", "kubegate-prod")
    assert proc.returncode == 0
    args = yaml.safe_load(proc.stdout)["users"][0]["user"]["exec"]["args"]
    assert args[-4:] == ["token", "--github-actions", "--audience", "kubegate-prod"]
    missing = kubegate("kubeconfig", "--server", "https://k", "--connection", "c")
    assert missing.returncode == 2 and "choose a token source" in missing.stderr
