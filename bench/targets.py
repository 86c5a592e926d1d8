"""The processes of one benchmark run: upstreams, the four targets, and how to find their memory.

Every target is its own process (the load generator is another): direct (the upstream itself),
`kubectl proxy` (the real binary, with a kubeconfig for the upstream), kubegate with identity only
and kubegate with the full pipeline (`kubegate serve`, policy + recording to SQLite + masking).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

UPSTREAM_TOKEN = "bench-upstream-token"
CONNECTION = "bench"
MASKS = ["secret-values", "last-applied", "env-credentials", "configmap-keys", "serviceaccount-tokens",
         "credentials-in-text"]
REPO = Path(__file__).resolve().parents[1]
POLICIES: list[dict[str, Any]] = [
    {"name": "bench-developers", "subjects": {"groups": ["developers"]}, "action": "allow", "mask": MASKS},
    {"name": "kube-system-is-read-only", "match": {"namespaces": ["kube-system"],
                                                   "verbs": ["create", "update", "patch", "delete"]},
     "action": "deny", "message": "kube-system is managed by the platform team"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kubectl_path() -> str:
    return shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl") or "kubectl"


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (a gateway with workers counts them all)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        with contextlib.suppress(OSError):
            match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{current}/status").read_text(), re.M)
            total += int(match.group(1)) * 1024 if match else 0
    return total


@dataclass(eq=False)
class Process:
    """A child process whose output is kept (the last lines, for error messages) and drained."""

    name: str
    proc: asyncio.subprocess.Process
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    _drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, name: str, argv: list[str], ready: str, timeout: float = 60,
                    env: dict[str, str] | None = None) -> tuple[Process, re.Match[str]]:
        """Start and wait for a line matching `ready` (a regex) on stdout or stderr."""
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, env=env, cwd=REPO)
        self = cls(name, proc)
        pattern = re.compile(ready)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await proc.stdout.readline()
                    if not raw:
                        raise RuntimeError(f"{name} exited before it was ready:\n" + "\n".join(self.lines))
                    line = raw.decode(errors="replace").rstrip()
                    self.lines.append(line)
                    if match := pattern.search(line):
                        break
        except BaseException:
            await self.stop()
            raise
        self._drain = asyncio.create_task(self._keep_draining())
        return self, match

    async def _keep_draining(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


@dataclass(eq=False)
class Target:
    name: str
    base: str
    authorization: str
    process: Process | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def rss(self) -> int | None:
        return rss_bytes(self.process.pid) if self.process is not None else None


def write_kubeconfig(path: Path, server: str, ca: Path) -> Path:
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "bench",
           "clusters": [{"name": "bench", "cluster": {"server": server, "certificate-authority": str(ca)}}],
           "users": [{"name": "bench", "user": {"token": UPSTREAM_TOKEN}}],
           "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}]}
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


async def start_kubectl_proxy(workdir: Path, upstream: str, ca: Path) -> Target:
    kubeconfig = write_kubeconfig(workdir / "kubectl-proxy.kubeconfig", upstream, ca)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    process, match = await Process.start(
        "kubectl proxy", [kubectl_path(), "proxy", f"--kubeconfig={kubeconfig}", "--port=0", "--address=127.0.0.1"],
        r"Starting to serve on ([\d.]+:\d+)", env=env)
    return Target("kubectl proxy", f"http://{match.group(1)}", "", process)


def gateway_config(workdir: Path, name: str, upstream: str, ca: Path, issuer_url: str, issuer_ca: Path) -> Path:
    state = workdir / f"gateway-{name}"
    state.mkdir(parents=True, exist_ok=True)
    doc = {
        "listen": {"address": f"127.0.0.1:{free_port()}"},
        "state_dir": str(state),
        "store": {"url": f"sqlite:///{state / 'kubegate.db'}"},
        "identity": {"issuers": [{"url": issuer_url, "audience": "kubegate", "ca_file": str(issuer_ca),
                                  "username_prefix": "bench:"}]},
        "connections": [{"name": CONNECTION, "server": upstream, "certificate_authority": str(ca),
                         "auth": {"token": UPSTREAM_TOKEN}}],
        "policies": POLICIES,
    }
    path = state / "kubegate.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def start_kubegate(name: str, config: Path, pipeline: str, token: str, workers: int) -> Target:
    """`kubegate serve` for the full pipeline; bench.gateway for identity only."""
    if pipeline == "full":
        argv = [sys.executable, "-m", "kubegate", "serve", "--config", str(config), "--log-level", "warning"]
        if workers > 1:
            argv += ["--workers", str(workers)]
    else:
        argv = [sys.executable, "-m", "bench.gateway", "--config", str(config), "--pipeline", pipeline]
    process, match = await Process.start(name, argv, r"kubegate listening on (https://\S+)")
    return Target(name, f"{match.group(1)}/k8s/{CONNECTION}", f"Bearer {token}", process)
