"""The processes of one benchmark run: upstreams, the four targets, and how to find their memory.

Every target is its own process (the load generator is another): direct (the upstream itself),
`kubectl proxy` (the real binary, with a kubeconfig for the upstream), kubegate with identity only
and kubegate with the full pipeline (`kubegate serve`, policy + recording to SQLite + masking).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.processes import Process, free_port, rss_bytes

UPSTREAM_TOKEN = "bench-upstream-token"
CONNECTION = "bench"
MASKS = [
    "secret-values",
    "last-applied",
    "env-credentials",
    "configmap-keys",
    "serviceaccount-tokens",
    "credentials-in-text",
]
POLICIES: list[dict[str, Any]] = [
    {"name": "bench-developers", "subjects": {"groups": ["developers"]}, "action": "allow", "mask": MASKS},
    {
        "name": "kube-system-is-read-only",
        "match": {"namespaces": ["kube-system"], "verbs": ["create", "update", "patch", "delete"]},
        "action": "deny",
        "message": "kube-system is managed by the platform team",
    },
]


def kubectl_path() -> str:
    return shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl") or "kubectl"


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
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "bench",
        "clusters": [{"name": "bench", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "bench", "user": {"token": UPSTREAM_TOKEN}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


async def start_events_upstream(root: Path, cert: Path, key: Path) -> tuple[Process, re.Match[str]]:
    """bench/upstream.py serving the fixtures in `root` (and watch events) over TLS; its port is match group 1."""
    command = [sys.executable, "-m", "bench.upstream", "--root", str(root), "--cert", str(cert), "--key", str(key)]
    return await Process.start("bench.upstream", command, r"listening (\d+)")


async def start_kubectl_proxy(workdir: Path, upstream: str, ca: Path) -> Target:
    kubeconfig = write_kubeconfig(workdir / "kubectl-proxy.kubeconfig", upstream, ca)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    process, match = await Process.start(
        "kubectl proxy",
        [kubectl_path(), "proxy", f"--kubeconfig={kubeconfig}", "--port=0", "--address=127.0.0.1"],
        r"Starting to serve on ([\d.]+:\d+)",
        env=env,
    )
    return Target("kubectl proxy", f"http://{match.group(1)}", "", process)


def gateway_config(workdir: Path, name: str, upstream: str, ca: Path, issuer_url: str, issuer_ca: Path) -> Path:
    state = workdir / f"gateway-{name}"
    state.mkdir(parents=True, exist_ok=True)
    doc = {
        "listen": {"address": f"127.0.0.1:{free_port()}"},
        "state_dir": str(state),
        "store": {"url": f"sqlite:///{state / 'kubegate.db'}"},
        "identity": {
            "issuers": [
                {"url": issuer_url, "audience": "kubegate", "ca_file": str(issuer_ca), "username_prefix": "bench:"}
            ]
        },
        "connections": [
            {
                "name": CONNECTION,
                "server": upstream,
                "certificate_authority": str(ca),
                "auth": {"token": UPSTREAM_TOKEN},
            }
        ],
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
