"""`kubegate kubeconfig` writes what a CI job needs: kubectl then works through kubegate with its token, against
the real kube-apiserver (whose answer to `auth whoami` is the judge of who it served)."""

from __future__ import annotations

import subprocess
import sys
import time
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
    assert user["args"][-2:] == ["--from-env", "CI_OIDC_TOKEN"]
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
    assert args[-3:] == ["--github-actions", "--audience", "kubegate-prod"]
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


def whoami(kubeconfig: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_a_token_file_kubeconfig_runs_no_plugin_and_every_call_is_authenticated(world: World, tmp_path: Path) -> None:
    """CI mode: the token is written once; kubectl reads it as tokenFile, and kubegate still verifies it."""
    assert world.env.gateway is not None
    out, token_file = tmp_path / "kubeconfig", tmp_path / "token"
    env = {**kubectl_env(), "CI_OIDC_TOKEN": world.token("ci-file", ("developers",))}
    where = ["--server", world.env.gateway.url, "--connection", world.env.connection]
    source = ["--ca", str(world.env.gateway.ca_file), "--from-env", "CI_OIDC_TOKEN"]
    files = ["--token-file", str(token_file), "--file", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "kubegate", "kubeconfig", *where, *source, *files],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(out.read_text())["users"][0]["user"] == {"tokenFile": str(token_file)}
    assert token_file.read_text() == env["CI_OIDC_TOKEN"]
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    del env["CI_OIDC_TOKEN"]  # kubectl needs nothing but the file now
    mark = world.control.audit_mark()
    who = whoami(out, env)
    assert who.returncode == 0, who.stderr
    assert who.stdout == "sandbox:ci-file"
    reviews = world.served("/apis/authentication.k8s.io/v1/selfsubjectreviews", mark)
    assert reviews and all((e.impersonated or {}).get("username") == "sandbox:ci-file" for e in reviews)
    token_file.write_text("not-a-token")  # kubegate verifies the file's content on every call
    refused = whoami(out, env)
    assert refused.returncode != 0
    assert "Unauthorized" in refused.stderr or "must be logged in" in refused.stderr, refused.stderr


def test_keep_fresh_replaces_the_token_and_kubectl_uses_each_new_one(world: World, tmp_path: Path) -> None:
    issuer = world.env.issuer
    out, token_file = tmp_path / "kubeconfig", tmp_path / "token"
    source = ["--dev-issuer", issuer.url, "--ca", str(issuer.ca_file), "--sub", "ci-fresh", "--group", "developers"]
    fresh = ["--lifetime", "4s", "--write-file", str(token_file), "--keep-fresh"]
    refresher = subprocess.Popen(
        [sys.executable, "-m", "kubegate", "token", *source, *fresh],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        world.env.write_kubeconfig(out, sub="ci-fresh")
        doc = yaml.safe_load(out.read_text())
        doc["users"][0]["user"] = {"tokenFile": str(token_file)}
        out.write_text(yaml.safe_dump(doc))
        tokens: list[str] = []
        deadline = time.monotonic() + 30
        while len(tokens) < 3 and time.monotonic() < deadline:
            if token_file.exists() and token_file.read_text() not in tokens:
                tokens.append(token_file.read_text())
                who = whoami(out, kubectl_env())
                assert (who.returncode, who.stdout) == (0, "sandbox:ci-fresh"), who.stderr
            time.sleep(0.05)
        assert len(tokens) == 3, "the refresher did not replace the token twice"
        token_file.unlink()
        assert refresher.wait(timeout=20) == 0, refresher.stderr.read() if refresher.stderr else ""
    finally:
        if refresher.poll() is None:
            refresher.kill()
            refresher.wait()


def test_a_token_file_copies_no_token_that_is_in_a_file_already(tmp_path: Path) -> None:
    proc = kubegate(
        "kubeconfig",
        "--server",
        "https://k",
        "--connection",
        "c",
        "--from-file",
        str(tmp_path / "job-token"),
        "--token-file",
        str(tmp_path / "copy"),
    )
    assert proc.returncode == 2
    assert f"use --from-file {tmp_path / 'job-token'} alone" in proc.stderr
    assert not (tmp_path / "copy").exists()
