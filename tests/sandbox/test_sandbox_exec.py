"""exec, attach, cp and port-forward of the sandbox's container emulation with the real kubectl (WebSocket only).

Each test runs twice: against the sandbox API server, which serves these subresources itself, and against the
real kube-apiserver, which hands them to the kubelet stand-in (kubegate/sandbox/kubelet.py) that serves the
same emulation as a kubelet would. No kubegate in between: these are tests of the sandbox and of the stand-in,
with kubectl (and, for the stand-in, kube-apiserver) as the judge of how they speak."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.sandbox.sandbox_kubectl import KUBECTL, Kubectl


def _pod(namespace: str, name: str, **spec: object) -> dict[str, object]:
    container: dict[str, object] = {"name": "app", "image": "busybox", **spec}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [container]},
    }


@dataclass
class Target:
    """Where the pods run: kubectl as that cluster's admin, a way to create objects, a fresh namespace."""

    admin: Kubectl
    seed: Callable[[list[dict[str, Any]]], None]
    namespace: str


@pytest.fixture(params=["sandbox", "kubelet"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "sandbox":
        sandbox = request.getfixturevalue("sandbox")
        return Target(request.getfixturevalue("admin"), sandbox.seed, request.getfixturevalue("namespace"))
    world = request.getfixturevalue("world")
    node = world.cluster.node

    def seed(objects: list[dict[str, Any]]) -> None:
        # no scheduler on the real cluster: pods are placed on the kubelet stand-in's Node
        world.cluster.seed(
            [{**o, "spec": {**o["spec"], "nodeName": node}} if o["kind"] == "Pod" else o for o in objects]
        )

    home = tmp_path / "home"
    home.mkdir()
    admin = Kubectl(world.control.admin_kubeconfig(tmp_path / "admin.kubeconfig"), home)
    return Target(admin, seed, world.namespace("exec"))


def test_exec_runs_the_command_with_the_pods_environment(target: Target) -> None:
    admin, namespace = target.admin, target.namespace
    target.seed(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": namespace},
                "stringData": {"password": "hunter2"},
            },
            _pod(
                namespace,
                "web",
                env=[
                    {"name": "GREETING", "value": "hello"},
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                ],
            ),
        ]
    )
    env = admin.run("exec", "web", "-n", namespace, "--", "env").stdout.splitlines()
    assert "GREETING=hello" in env and "DB_PASSWORD=hunter2" in env and "HOSTNAME=web" in env
    out = admin.run("exec", "web", "-n", namespace, "--", "sh", "-c", "echo $GREETING world; echo oops >&2 || true")
    assert out.stdout.startswith("hello world\n")


def test_exit_codes_and_stderr(target: Target) -> None:
    admin, namespace = target.admin, target.namespace
    target.seed([_pod(namespace, "box")])
    failed = admin.run("exec", "box", "-n", namespace, "--", "sh", "-c", "echo bad 2>&1; exit 3", check=False)
    assert failed.returncode == 3 and failed.stdout == "bad\n"
    missing = admin.run("exec", "box", "-n", namespace, "--", "nosuchprogram", check=False)
    assert missing.returncode == 127 and "nosuchprogram: not found" in missing.stderr
    assert admin.run("exec", "box", "-n", namespace, "--", "cat", "/nope", check=False).stderr.startswith("cat: ")


def test_stdin_is_piped_and_closed(target: Target) -> None:
    admin, namespace = target.admin, target.namespace
    target.seed([_pod(namespace, "box")])
    assert admin.run("exec", "-i", "box", "-n", namespace, "--", "cat", stdin="x\ny\n").stdout == "x\ny\n"
    script = "mkdir -p /data && echo saved > /data/f && cat /data/f | wc -c\n"
    assert admin.run("exec", "-i", "box", "-n", namespace, "--", "sh", stdin=script).stdout == "6\n"
    assert admin.run("exec", "box", "-n", namespace, "--", "ls", "/data").stdout == "f\n"


def test_cp_both_ways_keeps_the_bytes(target: Target, tmp_path: Path) -> None:
    admin, namespace = target.admin, target.namespace
    target.seed([_pod(namespace, "files")])
    payload = os.urandom(200_000)
    src = tmp_path / "blob.bin"
    src.write_bytes(payload)
    admin.run("cp", str(src), f"{namespace}/files:/tmp/blob.bin")
    remote = admin.run("exec", "files", "-n", namespace, "--", "sha256sum", "/tmp/blob.bin").stdout
    assert remote.split()[0] == hashlib.sha256(payload).hexdigest()
    back = tmp_path / "back.bin"
    admin.run("cp", f"{namespace}/files:/tmp/blob.bin", str(back))
    assert back.read_bytes() == payload


def test_interactive_tty_session(target: Target) -> None:
    admin, namespace = target.admin, target.namespace
    target.seed([_pod(namespace, "tty")])
    child = pexpect.spawn(
        str(KUBECTL),
        ["--kubeconfig", str(admin.kubeconfig), "exec", "-it", "tty", "-n", namespace, "--", "sh"],
        env={"HOME": str(admin.home), "PATH": os.environ.get("PATH", "")},
        timeout=30,
        dimensions=(30, 100),
    )
    try:
        child.expect_exact("tty:/# ")
        child.sendline("echo typed-$HOSTNAME; stty size")
        child.expect_exact("typed-tty\r\n30 100\r\n")
        child.sendline("exit 4")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_forward_carries_http(target: Target) -> None:
    admin, namespace = target.admin, target.namespace
    target.seed([_pod(namespace, "srv", ports=[{"containerPort": 8080}])])
    local = _free_port()
    forward = admin.stream("port-forward", "-n", namespace, "pod/srv", f"{local}:8080")
    try:
        assert "Forwarding from 127.0.0.1" in forward.next_line()
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/hello?x=1", timeout=20) as answer:
            doc = json.loads(answer.read())
        assert doc == {
            "pod": "srv",
            "namespace": namespace,
            "port": 8080,
            "method": "GET",
            "path": "/hello?x=1",
            "body": "",
        }
    finally:
        forward.stop()


def test_attach_sees_what_the_container_logs(target: Target) -> None:
    admin, namespace = target.admin, target.namespace
    target.seed([_pod(namespace, "main")])
    attach = subprocess.Popen(
        [str(KUBECTL), "--kubeconfig", str(admin.kubeconfig), "attach", "-i", "main", "-n", namespace],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={"HOME": str(admin.home), "PATH": os.environ.get("PATH", "")},
    )
    try:
        assert attach.stdin is not None and attach.stdout is not None
        attach.stdin.write("ping\n")
        attach.stdin.flush()
        assert attach.stdout.readline() == "ping\n"
    finally:
        attach.kill()
        attach.wait()
    assert admin.run("logs", "main", "-n", namespace).stdout == "ping\n"
