"""The CI integrations run as CI runs them, against the sandbox world: action.yml's steps with a stand-in
for the GitHub Actions token service, and docs/ci.md's GitLab job with the token GitLab would inject."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.conftest import KUBECTL, World, kubectl_env

REPO = Path(__file__).resolve().parents[1]
JOB_SUB = "repo:acme/app:ref:refs/heads/main"


@pytest.fixture
def token_service(sandbox_world: World) -> Iterator[tuple[str, list[str]]]:
    """GitHub's token service: a bearer-authenticated GET answering {"value": JWT for ?audience=}."""
    seen: list[str] = []

    async def idtoken(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "bearer runtime-token":
            return web.json_response({"message": "bad credentials"}, status=401)
        seen.append(request.query["audience"])
        token = sandbox_world.env.issuer.mint(
            JOB_SUB, ["developers"], {"repository": "acme/app"}, audience=request.query["audience"]
        )
        return web.json_response({"count": 1, "value": token})

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/idtoken", idtoken)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = sandbox_world.call(start())
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/idtoken?api-version=2.0", seen
    sandbox_world.call(runner.cleanup())


def ci_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = kubectl_env()
    env["PATH"] = f"{Path(sys.executable).parent}:{Path(KUBECTL).parent}:/usr/bin:/bin"
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return {**env, **extra}


def run_action(inputs: dict[str, str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Each step of the composite action as the runner would: `if`, inputs as env, bash -eo pipefail."""
    action: dict[str, Any] = yaml.safe_load((REPO / "action.yml").read_text())
    values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()} | inputs
    files = {"GITHUB_ENV": tmp_path / "github_env", "GITHUB_OUTPUT": tmp_path / "github_output"}
    base = {**env, "GITHUB_ACTION_PATH": str(REPO), "RUNNER_TEMP": str(tmp_path)} | {
        k: str(v) for k, v in files.items()
    }
    done = subprocess.CompletedProcess[str]([], 0, "", "")
    for step in action["runs"]["steps"]:
        assert "${{" not in step["run"], "inputs reach scripts as env, never pasted into the code"
        if "if" in step:
            cond = re.fullmatch(r"inputs\.([\w-]+) == '([^']*)'", step["if"])
            assert cond is not None, step["if"]
            if values[cond.group(1)] != cond.group(2):
                continue
        step_env = {
            k: re.sub(r"\$\{\{ inputs\.([\w-]+) \}\}", lambda m: values[m.group(1)], v)
            for k, v in (step.get("env") or {}).items()
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            env={**base, **step_env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            return done
    return done


def test_the_action_writes_a_kubeconfig_for_the_job_and_kubectl_works(
    sandbox_world: World, token_service: tuple[str, list[str]], tmp_path: Path
) -> None:
    gateway = sandbox_world.env.gateway
    assert gateway is not None and gateway.ca_file is not None
    url, seen = token_service
    env = ci_env(tmp_path, ACTIONS_ID_TOKEN_REQUEST_URL=url, ACTIONS_ID_TOKEN_REQUEST_TOKEN="runtime-token")
    done = run_action(
        {
            "server": gateway.url,
            "connection": sandbox_world.env.connection,
            "ca": gateway.ca_file.read_text(),
            "namespace": "default",
            "install": "false",
        },
        env,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    exported = dict(line.split("=", 1) for line in (tmp_path / "github_env").read_text().splitlines())
    assert (tmp_path / "github_output").read_text() == f"path={exported['KUBECONFIG']}\n"
    job = {**env, "KUBECONFIG": exported["KUBECONFIG"]}
    name = f"ci-{uuid.uuid4().hex[:6]}"
    for command in (
        ["kubegate", "run", "--", "kubectl", "create", "configmap", name],
        ["kubectl", "get", "configmap", name, "-o", "name"],
    ):
        ran = subprocess.run(command, env=job, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"configmap/{name}"
    assert seen == ["kubegate"]  # the action's check fetched the token; kubectl read it from the token file
    who = sandbox_world.cli("sessions", "list", "--user", f"sandbox:{JOB_SUB}", "-o", "json").stdout
    assert f'"name": "{name}"' in who
    user = yaml.safe_load(Path(exported["KUBECONFIG"]).read_text())["users"][0]["user"]
    assert user == {"tokenFile": str(tmp_path / "kubegate" / "token")}
    stop_refresher(tmp_path / "kubegate")


def stop_refresher(directory: Path) -> None:
    """The action's background `kubegate token --keep-fresh` is running; removing its file stops it."""
    pid = int((directory / "token-refresh.pid").read_text())
    assert alive(pid)
    (directory / "token").unlink()
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the refresher did not stop when its file was removed"
    assert (directory / "token-refresh.log").read_text() == ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_action_can_run_the_plugin_per_call_instead(
    sandbox_world: World, token_service: tuple[str, list[str]], tmp_path: Path
) -> None:
    gateway = sandbox_world.env.gateway
    assert gateway is not None and gateway.ca_file is not None
    url, _ = token_service
    env = ci_env(tmp_path, ACTIONS_ID_TOKEN_REQUEST_URL=url, ACTIONS_ID_TOKEN_REQUEST_TOKEN="runtime-token")
    inputs = {"server": gateway.url, "connection": sandbox_world.env.connection, "install": "false"}
    done = run_action({**inputs, "ca": gateway.ca_file.read_text(), "token-file": "false"}, env, tmp_path)
    assert done.returncode == 0, done.stderr
    kubeconfig = tmp_path / "kubegate" / "kubeconfig"
    assert yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["exec"]["args"][-3:] == [
        "--github-actions",
        "--audience",
        "kubegate",
    ]
    assert not (tmp_path / "kubegate" / "token").exists()
    ran = subprocess.run(
        [KUBECTL, f"--kubeconfig={kubeconfig}", "get", "namespaces", "-o", "name"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr


def test_the_action_fails_early_in_a_job_without_id_token_permission(sandbox_world: World, tmp_path: Path) -> None:
    done = run_action(
        {"server": "https://kubegate.example.com", "connection": "c", "install": "false"}, ci_env(tmp_path), tmp_path
    )
    assert done.returncode == 1
    assert "run inside a GitHub Actions job with `permissions: id-token: write`" in done.stderr


def test_the_gitlab_job_in_the_docs_runs(sandbox_world: World, tmp_path: Path) -> None:
    gateway = sandbox_world.env.gateway
    assert gateway is not None and gateway.ca_file is not None
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "ci.md").read_text(), re.S)
    [job] = [doc["deploy"] for doc in map(yaml.safe_load, blocks) if "id_tokens" in doc.get("deploy", {})]
    audience = job["id_tokens"]["KUBEGATE_ID_TOKEN"]["aud"]
    name = f"gl-{uuid.uuid4().hex[:6]}"
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "cm.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}})
    )
    # The job's variables, pointed at the demo; the id token is what GitLab would inject.
    env = ci_env(
        tmp_path,
        **{**job["variables"], "KUBEGATE_URL": gateway.url, "KUBEGATE_CONNECTION": sandbox_world.env.connection},
        KUBEGATE_CA_FILE=str(gateway.ca_file),
        CI_PROJECT_DIR=str(tmp_path),
        TMPDIR=str(tmp_path),
        KUBEGATE_ID_TOKEN=sandbox_world.env.issuer.mint(
            "project_path:acme/app:ref_type:branch:ref:main", ["developers"], audience=audience
        ),
    )
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", "\n".join(job["script"])],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"configmap/{name} created" in done.stdout
