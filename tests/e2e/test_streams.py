"""exec, attach, cp and port-forward through kubegate with the real kubectl and a real kube-apiserver (which
hands the WebSocket to the kubelet stand-in): decided before the upgrade, bridged over WebSocket, masked as
they flow, recorded as asciicast and port-forward connections. The cluster's audit log says what reached it,
as whom, and that what kubegate refused never did."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pexpect
import pytest

from kubegate.masking.marker import MARKER
from kubegate.sandbox.envtest import GATEWAY_USER, AuditEvent
from tests.conftest import KUBECTL, World, kubectl_env

pytestmark = pytest.mark.e2e
SECRET = "s3cr3t-Pa55word-xyz"


@pytest.fixture(scope="module")
def ns(world: World) -> str:
    name = world.namespace("streams")
    world.pod(
        name,
        "app",
        containers=[
            {
                "name": "app",
                "image": "busybox",
                "ports": [{"containerPort": 8080}],
                "env": [{"name": "DB_PASSWORD", "value": SECRET}, {"name": "GREETING", "value": "hello"}],
            }
        ],
    )
    return name


def _streamed(world: World, ns: str, subresource: str, user: str, since: int) -> list[AuditEvent]:
    """The pods/app/<subresource> calls that reached the cluster since `since`: at least one, each opened (101)
    as kubegate impersonating the caller, never as kubegate itself."""
    path = f"/api/v1/namespaces/{ns}/pods/app/{subresource}"
    events = [e for e in world.served(path, since) if e.uri.partition("?")[0] == path]
    assert events, f"no {subresource} reached the cluster"
    for event in events:
        assert event.user == GATEWAY_USER, event.raw
        assert (event.impersonated or {}).get("username") == f"sandbox:{user}", event.raw
        assert event.code == 101, event.raw
    return events


def _never_reached(world: World, ns: str, subresource: str, since: int) -> None:
    """Nothing for pods/app/<subresource> reached the cluster, though the command's other calls did (so the
    audit log is being read where kubectl's requests land)."""
    reached = world.reached(f"/api/v1/namespaces/{ns}/pods/app", since)
    assert reached, "kubectl's pod lookup should have reached the cluster"
    assert not [e.uri for e in reached if f"/pods/app/{subresource}" in e.uri]


def _sessions(world: World, user: str, command: str) -> list[dict[str, Any]]:
    world.settle()
    listing = json.loads(
        world.cli("sessions", "list", "--user", f"sandbox:{user}", "--command", command, "--output", "json").stdout
    )
    return list(listing["items"])


def _events(world: World, session_id: str) -> list[dict[str, Any]]:
    return list(json.loads(world.cli("sessions", "show", session_id, "--output", "json").stdout)["events"])


def _only_session(world: World, user: str, command: str) -> tuple[str, list[dict[str, Any]]]:
    [session] = _sessions(world, user, command)
    return session["id"], _events(world, session["id"])


def _cast_text(events: list[dict[str, Any]], code: str = "o") -> str:
    return "".join(text for e in events if e["type"] == "cast" for _, c, text in e["data"]["events"] if c == code)


class Lines:
    """A process's output, read line by line on a thread, so a test waits for what it expects to see."""

    def __init__(self, stream: Any) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{text!r} did not appear; saw {self.seen}") from None
            if line is None:
                raise AssertionError(f"the output ended before {text!r}; saw {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def rest(self, timeout: float = 10) -> str:
        self._thread.join(timeout)
        while not self._lines.empty():
            line = self._lines.get()
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)


def test_env_with_a_credential_is_masked_on_screen_and_in_the_recording(world: World, ns: str) -> None:
    cfg = world.kubeconfig("erin")
    mark = world.control.audit_mark()
    out = world.kubectl("exec", "app", "-n", ns, "--", "env", kubeconfig=cfg).stdout
    assert "GREETING=hello" in out and SECRET not in out and f"DB_PASSWORD={MARKER}" in out
    [call] = _streamed(world, ns, "exec", "erin", mark)
    assert "command=env" in call.uri
    _, events = _only_session(world, "erin", "exec")
    stream = next(e for e in events if e["type"] == "stream")
    assert stream["data"]["kind"] == "exec" and stream["data"]["command"] == ["env"]
    assert stream["data"]["protocol"] == "v5.channel.k8s.io" and not stream["data"]["tty"]
    recorded = _cast_text(events)
    assert "GREETING=hello" in recorded and f"DB_PASSWORD={MARKER}" in recorded and SECRET not in json.dumps(events)
    end = next(e for e in events if e["type"] == "end")
    assert end["data"]["upgrade"]["exit_code"] == 0


def test_exit_codes_and_piped_stdin(world: World, ns: str) -> None:
    cfg = world.kubeconfig("xavier")
    mark = world.control.audit_mark()
    failed = world.kubectl(
        "exec", "app", "-n", ns, "--", "sh", "-c", "echo out; echo err >&2; exit 3", kubeconfig=cfg, check=False
    )
    assert failed.returncode == 3 and failed.stdout == "out\n" and "err" in failed.stderr
    piped = subprocess.run(
        f"echo x | {KUBECTL} --kubeconfig={cfg} exec -i app -n {ns} -- cat",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        env=kubectl_env(),
    )
    assert piped.returncode == 0 and piped.stdout == "x\n", piped.stderr
    assert len(_streamed(world, ns, "exec", "xavier", mark)) == 2


def test_interactive_tty_session_is_recorded_and_replayable(world: World, ns: str, tmp_path: Path) -> None:
    cfg = world.kubeconfig("tina")
    mark = world.control.audit_mark()
    child = pexpect.spawn(
        KUBECTL,
        [f"--kubeconfig={cfg}", "exec", "-it", "app", "-n", ns, "--", "sh"],
        env=kubectl_env(),
        timeout=30,
        dimensions=(33, 101),
    )
    try:
        child.expect_exact("app:/# ")
        child.sendline("echo marker-$GREETING; stty size")
        child.expect_exact("marker-hello\r\n33 101\r\n")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5
    [call] = _streamed(world, ns, "exec", "tina", mark)
    assert "tty=true" in call.uri
    session_id, events = _only_session(world, "tina", "exec")
    assert "marker-hello" in _cast_text(events)
    assert "echo marker-$GREETING" in _cast_text(events, "i").replace("\r", "\n")
    assert any(
        c == "r" and text == "101x33" for e in events if e["type"] == "cast" for _, c, text in e["data"]["events"]
    )
    replay = world.cli("sessions", "replay", session_id, "--speed", "50", "--idle-limit", "0.1").stdout
    assert "marker-hello" in replay and "33 101" in replay
    cast_file = tmp_path / "session.cast"
    world.cli("sessions", "export", session_id, "--format", "asciicast", "--file", str(cast_file))
    header = json.loads(cast_file.read_text().splitlines()[0])
    assert header["version"] == 2 and (header["width"], header["height"]) == (101, 33)
    asciinema = shutil.which("asciinema", path=str(Path(sys.executable).parent)) or "asciinema"
    played = subprocess.run([asciinema, "cat", str(cast_file)], capture_output=True, text=True, timeout=60)
    assert played.returncode == 0 and "marker-hello" in played.stdout, played.stderr


def test_cp_both_ways_keeps_checksums(world: World, ns: str, tmp_path: Path) -> None:
    cfg = world.kubeconfig("carl")
    payload = os.urandom(300_000)
    src = tmp_path / "up.bin"
    src.write_bytes(payload)
    mark = world.control.audit_mark()
    world.kubectl("cp", str(src), f"{ns}/app:/tmp/up.bin", kubeconfig=cfg)
    remote = world.kubectl("exec", "app", "-n", ns, "--", "sha256sum", "/tmp/up.bin", kubeconfig=cfg).stdout
    assert remote.split()[0] == hashlib.sha256(payload).hexdigest()
    down = tmp_path / "down.bin"
    world.kubectl("cp", f"{ns}/app:/tmp/up.bin", str(down), kubeconfig=cfg)
    assert hashlib.sha256(down.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
    calls = _streamed(world, ns, "exec", "carl", mark)
    assert sum("command=tar" in e.uri for e in calls) >= 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_forward_carries_http_and_records_each_connection(world: World, ns: str) -> None:
    cfg = world.kubeconfig("pat")
    local = _free_port()
    mark = world.control.audit_mark()
    forward = world.popen("port-forward", "-n", ns, "pod/app", f"{local}:8080", kubeconfig=cfg)
    try:
        assert forward.stdout is not None
        assert "Forwarding from 127.0.0.1" in forward.stdout.readline()
        request = urllib.request.Request(f"http://127.0.0.1:{local}/ping", data=b"hello pod", method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            doc = json.loads(answer.read())
        assert doc["pod"] == "app" and doc["port"] == 8080 and doc["body"] == "hello pod"
        assert doc["namespace"] == ns and doc["method"] == "POST" and doc["path"] == "/ping"
    finally:
        forward.kill()
        forward.wait()
    _streamed(world, ns, "portforward", "pat", mark)  # one tunnel; the ports travel inside it
    _, events = _only_session(world, "pat", "port-forward")
    stream = next(e for e in events if e["type"] == "stream")
    assert stream["data"]["kind"] == "portforward" and stream["data"]["protocol"] == "SPDY/3.1+portforward.k8s.io"
    [conn] = [e["data"] for e in events if e["type"] == "forward"]
    assert conn["port"] == 8080 and conn["bytes_to_pod"] > len("hello pod") and conn["bytes_from_pod"] > 100


def test_an_exec_denied_by_policy_never_upgrades_and_is_one_denial(world: World, ns: str) -> None:
    world.set_policies(
        "no-exec-for-ivan",
        [
            {
                "name": "ivan-may-not-exec",
                "subjects": {"users": ["sandbox:ivan"]},
                "match": {"verbs": ["create"], "resources": ["pods/exec"]},
                "action": "deny",
                "message": "ivan may not exec into pods",
            }
        ],
    )
    try:
        mark = world.control.audit_mark()
        out = world.kubectl("exec", "app", "-n", ns, "--", "env", kubeconfig=world.kubeconfig("ivan"), check=False)
        assert out.returncode != 0 and "ivan may not exec into pods" in out.stderr
        assert SECRET not in out.stdout and "GREETING" not in out.stdout
        _never_reached(world, ns, "exec", mark)
        _, events = _only_session(world, "ivan", "exec")
        assert len([e for e in events if e["type"] == "refused"]) == 1
        retries = [e for e in events if e["type"] == "retry"]
        assert len(retries) == 1 and retries[0]["data"]["upgrade"].lower().startswith("spdy")
    finally:
        world.clear_policies("no-exec-for-ivan")


def test_exec_command_rules_match_the_argv(world: World, ns: str) -> None:
    world.set_policies(
        "no-shell-for-sam",
        [
            {
                "name": "sam-runs-no-shell",
                "subjects": {"users": ["sandbox:sam"]},
                "match": {"exec": [{"command": ["sh", "-c", "*"]}]},
                "action": "deny",
                "message": "no shell scripts in pods, sam",
            }
        ],
    )
    try:
        cfg = world.kubeconfig("sam")
        mark = world.control.audit_mark()
        denied = world.kubectl(
            "exec", "app", "-n", ns, "--", "sh", "-c", "echo ran-the-script", kubeconfig=cfg, check=False
        )
        assert denied.returncode != 0 and "no shell scripts in pods, sam" in denied.stderr
        assert "ran-the-script" not in denied.stdout
        _never_reached(world, ns, "exec", mark)
        mark = world.control.audit_mark()
        assert "GREETING=hello" in world.kubectl("exec", "app", "-n", ns, "--", "env", kubeconfig=cfg).stdout
        [allowed] = _streamed(world, ns, "exec", "sam", mark)
        assert "command=env" in allowed.uri
    finally:
        world.clear_policies("no-shell-for-sam")


def test_spdy_only_clients_are_told_to_use_websockets(world: World, ns: str) -> None:
    env = {**kubectl_env(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    mark = world.control.audit_mark()
    out = subprocess.run(
        [KUBECTL, f"--kubeconfig={world.kubeconfig('olga')}", "exec", "app", "-n", ns, "--", "env"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode != 0 and "kubectl 1.30 or newer" in out.stderr
    assert SECRET not in out.stdout and "GREETING" not in out.stdout
    _never_reached(world, ns, "exec", mark)


def test_an_exec_ends_when_the_token_expires(world: World, ns: str) -> None:
    lifetime = 6
    cfg = world.kubeconfig("kate", token=world.token("kate", lifetime=lifetime))
    expires = time.monotonic() + lifetime
    mark = world.control.audit_mark()
    proc = world.popen("exec", "app", "-n", ns, "--", "sh", "-c", "echo started; sleep 60", kubeconfig=cfg)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        Lines(proc.stdout).wait_for("started", timeout=lifetime)  # the stream is open and flowing
        _streamed(world, ns, "exec", "kate", mark)
        err = proc.stderr.read()
        code = proc.wait(30)
    finally:
        proc.kill()
    assert time.monotonic() < expires + 20, "the exec ran on after the token expired"
    assert code != 0 and "kubegate closed this exec session: your token expired" in err, err


def test_a_watch_ends_when_the_token_expires(world: World) -> None:
    namespace = world.namespace("watch-expiry")
    lifetime = 8
    cfg = world.kubeconfig("walt", token=world.token("walt", lifetime=lifetime))
    expires = time.monotonic() + lifetime
    mark = world.control.audit_mark()
    proc = world.popen("get", "configmaps", "-n", namespace, "-w", kubeconfig=cfg)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        world.control.wait_for_event(
            lambda e: (
                e.stage == "ResponseStarted"
                and "watch=true" in e.uri
                and f"/namespaces/{namespace}/configmaps" in e.uri
                and (e.impersonated or {}).get("username") == "sandbox:walt"
            ),
            mark,
        )
        lines = Lines(proc.stdout)
        world.cluster.seed(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "seen-by-the-watch", "namespace": namespace},
                }
            ]
        )
        lines.wait_for("seen-by-the-watch", timeout=max(1.0, expires - time.monotonic()))  # the watch delivers
        code = proc.wait(30)  # it ends by itself
        out = lines.rest() + proc.stderr.read()
    finally:
        proc.kill()
    assert time.monotonic() < expires + 20, "the watch ran on after the token expired"
    # kubectl prints the watch's ERROR event (a Status) and, once the stream ends, exits (with 0)
    assert "kubegate ended this stream: your token expired" in out, (code, out)


def test_attach_through_kubegate_is_bridged_and_recorded(world: World, ns: str) -> None:
    cfg = world.kubeconfig("atticus", ("developers",))
    mark = world.control.audit_mark()
    attach = subprocess.Popen(
        [KUBECTL, f"--kubeconfig={cfg}", "attach", "-i", "app", "-n", ns],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl_env(),
    )
    try:
        assert attach.stdin is not None and attach.stdout is not None
        attach.stdin.write("attached-and-heard\n")
        attach.stdin.flush()
        assert attach.stdout.readline() == "attached-and-heard\n"
    finally:
        attach.kill()
        attach.wait()
    _streamed(world, ns, "attach", "atticus", mark)
    _, events = _only_session(world, "atticus", "attach")
    assert "attached-and-heard" in _cast_text(events, "i")
    assert "attached-and-heard" in _cast_text(events, "o")
    stream = next(e for e in events if e["type"] == "stream")
    assert stream["data"]["kind"] == "attach" and stream["data"]["pod"] == "app"
