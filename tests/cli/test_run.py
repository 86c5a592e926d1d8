"""`kubegate run -- kubectl ...` against the sandbox world: a held kubectl shows its access request and
the approve command at once, and the approved answer says who approved it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import KUBECTL, World, kubectl_env


def test_a_held_kubectl_prints_its_access_request_and_the_approved_answer_names_the_reviewer(
    sandbox_world: World,
) -> None:
    world = sandbox_world
    name = world.namespace("held")
    cfg = world.kubeconfig()
    wrapper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubegate",
            "run",
            "--kubeconfig",
            str(cfg),
            "--",
            KUBECTL,
            f"--kubeconfig={cfg}",
            "delete",
            "namespace",
            name,
            "--wait=false",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl_env(),
    )
    try:
        assert wrapper.stderr is not None
        lines = [wrapper.stderr.readline() for _ in range(3)]
        assert lines[0].startswith("kubegate: held for approval: access request ")
        assert f"namespaces {name}" in lines[0]
        assert "who can approve: group platform-oncall" in lines[1]
        request_id = lines[0].split("access request ")[1].split(":")[0]
        assert f"kubegate requests approve {request_id} --server https://" in lines[2]
        world.cli("requests", "approve", request_id, sub="bob", groups=("platform-oncall",))
        out, err = wrapper.communicate(timeout=60)
    finally:
        wrapper.kill()
    assert wrapper.returncode == 0, err
    assert f'namespace "{name}" deleted' in out
    assert (
        f"Warning: kubegate let this request through: access request {request_id} was approved by sandbox:bob"
    ) in err


def test_run_says_what_is_wrong_with_the_kubeconfig(tmp_path: Path) -> None:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://x:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
            }
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "kubegate", "run", "--kubeconfig", str(cfg), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: kubeconfig {cfg}: its server 'https://x:6443' is not a kubegate connection URL (https://HOST/k8s/NAME)"
    )
