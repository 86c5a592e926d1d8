"""`kubegate demo` driven only by what it prints: the export line, then kubectl and the admin commands
without a flag; a second demo leaves the running one's state alone and names the busy port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import KUBECTL


def kubegate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubegate", *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A demo on any free port; its state directory and its printout up to the first command list."""
    state = tmp_path_factory.mktemp("demo") / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "XDG_CONFIG"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubegate", "demo", "--state-dir", str(state), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    try:
        yield state, "".join(lines)
    finally:
        proc.terminate()
        proc.wait(30)


def shell(printout: str, command: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """Run `command` in a shell after the printout's export line, as a user pasting it would."""
    [export] = [line.strip() for line in printout.splitlines() if line.strip().startswith("export ")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "XDG_CONFIG"))}
    env["XDG_CACHE_HOME"] = str(cache)
    env["PATH"] = f"{Path(KUBECTL).parent}:/usr/bin:/bin"  # kubectl, but no kubegate until the export
    return subprocess.run(["bash", "-c", f"{export}\n{command}"], capture_output=True, text=True, timeout=60, env=env)


def test_the_printed_commands_run_without_flags(running: tuple[Path, str], tmp_path: Path) -> None:
    _, printout = running
    assert "--server" not in printout and "--ca" not in printout.split("Then try:")[1]
    assert shell(printout, "command -v kubegate", tmp_path).returncode == 0
    done = shell(printout, "kubectl get namespaces -o name", tmp_path)
    assert done.returncode == 0 and "namespace/default" in done.stdout, done.stderr
    # a write: judged on a dry run at the sandbox, whose strict HTTP parser refuses repeated headers
    done = shell(
        printout,
        "kubectl create secret generic db --from-literal=password=s3cr3t && kubectl get secret db -o yaml",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "secret/db created" in done.stdout and "czNjcjN0" not in done.stdout  # base64 of s3cr3t: masked
    for command in ("kubegate requests list", "kubegate sessions list -o json", "kubegate audit verify"):
        done = shell(printout, command, tmp_path)
        assert done.returncode == 0, (command, done.stderr)
    assert "audit chain OK" in shell(printout, "kubegate audit verify", tmp_path).stdout


def test_a_second_demo_leaves_the_running_one_alone(running: tuple[Path, str], tmp_path: Path) -> None:
    state, printout = running
    before = {p: p.stat().st_mtime_ns for p in (state / "kubegate.yaml", state / "kubeconfig", state / "context.yaml")}
    done = kubegate("demo", "--state-dir", str(state), "--port", "0")
    assert done.returncode == 1
    assert re.fullmatch(
        rf"error: a kubegate demo \(pid \d+\) is already running with its state in {state}; use it, "
        r"stop it with Ctrl-C, or start another with --state-dir OTHER_DIR --port 0\n",
        done.stderr,
    )
    assert {p: p.stat().st_mtime_ns for p in before} == before

    port = re.search(r"gateway: +https://127\.0\.0\.1:(\d+)", printout)
    assert port is not None
    done = kubegate("demo", "--state-dir", str(tmp_path / "other"), "--port", port.group(1))
    assert done.returncode == 1
    assert done.stderr == (
        f"error: port {port.group(1)} on 127.0.0.1 is busy (another demo or server listens "
        "there); pass --port N, or --port 0 for any free port\n"
    )
    assert not (tmp_path / "other" / "kubegate.yaml").exists()
