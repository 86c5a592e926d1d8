"""Exec throughput: bytes per second of one `kubectl exec` stream, direct to the sandbox cluster and
through kubegate (its own process, recording on), without and with the credentials-in-text mask.

    .venv/bin/python -m bench.exec_throughput [--megabytes 200] [--rounds 3]

The sandbox cluster and the development issuer run in this process; `kubegate serve` runs in a
child, so the gateway has a core of its own as it would in production. The stream is text
(`yes` lines), the kind of output exec carries; the best of the rounds is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.processes import REPO, free_port
from kubegate.sandbox.cluster import SandboxCluster
from kubegate.sandbox.environment import CONNECTION, gateway_config
from kubegate.sandbox.issuer import DevIssuer

TARGET_MB_S = 50.0
LINE = "the quick brown fox jumps over the lazy dog, 0123456789"
NAMESPACE = "bench"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"


class Sandbox:
    """The cluster and issuer on a loop of their own, in a thread of this process."""

    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.cluster = SandboxCluster(root / "cluster")
        self.issuer = DevIssuer(root / "issuer")
        self.call(self.cluster.start())
        self.call(self.issuer.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        self.call(self.issuer.stop())
        self.call(self.cluster.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _seed(cluster: SandboxCluster) -> None:
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "bench"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in ("bench-raw", "bench-masked")
        ],
    }
    cluster.seed(
        [
            binding,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "source", "namespace": NAMESPACE},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            },
        ]
    )


def _gateway_kubeconfig(path: Path, server: str, ca: Path, token: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "k",
        "clusters": [{"name": "k", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "k", "user": {"token": token}}],
        "contexts": [{"name": "k", "context": {"cluster": "k", "user": "k"}}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _wait_ready(url: str, ca: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kubegate exited with {proc.returncode}")
        try:
            context = ssl.create_default_context(cafile=str(ca))
            with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=context):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("kubegate did not become ready")


DIRECT_LABEL, RECORDED_LABEL, MASKED_LABEL = "direct", "kubegate, recorded", "kubegate, recorded and masked"


def measure(kubeconfig: Path, megabytes: int) -> float:
    """MB/s of one exec that writes `megabytes` of text, read by this process as fast as it comes."""
    script = f"yes '{LINE}' | head -c {megabytes}M"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [KUBECTL, f"--kubeconfig={kubeconfig}", "exec", "source", "-n", NAMESPACE, "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"HOME": os.environ.get("HOME", "/tmp"), "PATH": os.environ.get("PATH", "")},
    )
    assert proc.stdout is not None
    total = 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
    proc.wait()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or total != megabytes << 20:
        raise SystemExit(
            f"exec failed ({proc.returncode}, {total} bytes): {proc.stderr.read().decode()[-500:]}"
            if proc.stderr
            else "exec failed"
        )
    return total / elapsed / 1e6


def throughput(megabytes: int, rounds: int) -> dict[str, float]:
    """Best MB/s of each path over `rounds` interleaved runs: direct, recorded, recorded and masked."""
    with tempfile.TemporaryDirectory(prefix="kubegate-exec-bench-") as tmp:
        root = Path(tmp)
        sandbox = Sandbox(root)
        gateway: subprocess.Popen[bytes] | None = None
        try:
            _seed(sandbox.cluster)
            direct = sandbox.cluster.write_kubeconfig(root / "direct.kubeconfig", sandbox.cluster.admin_token)
            upstream = sandbox.cluster.write_kubeconfig(root / "gateway-upstream.kubeconfig")
            policies = root / "policies"
            policies.mkdir()
            port = free_port()
            config = gateway_config(root, upstream, sandbox.issuer, policies, listen=f"127.0.0.1:{port}")
            config["policies"] = [
                {"name": "bench-raw", "subjects": {"groups": ["bench-raw"]}, "action": "allow"},
                {
                    "name": "bench-masked",
                    "subjects": {"groups": ["bench-masked"]},
                    "action": "allow",
                    "mask": ["credentials-in-text"],
                },
            ]
            config_file = root / "kubegate.yaml"
            config_file.write_text(yaml.safe_dump(config))
            gateway = subprocess.Popen(
                [sys.executable, "-m", "kubegate", "serve", "--config", str(config_file), "--log-level", "warning"],
                cwd=REPO,
            )
            ca = root / "gateway" / "tls" / "ca.crt"
            url = f"https://127.0.0.1:{port}"
            _wait_ready(url, ca, gateway)
            server = f"{url}/k8s/{CONNECTION}"
            raw = _gateway_kubeconfig(
                root / "raw.kubeconfig", server, ca, sandbox.issuer.mint("bench", ["bench-raw"], lifetime=3600)
            )
            masked = _gateway_kubeconfig(
                root / "masked.kubeconfig", server, ca, sandbox.issuer.mint("bench", ["bench-masked"], lifetime=3600)
            )
            results: dict[str, list[float]] = {DIRECT_LABEL: [], RECORDED_LABEL: [], MASKED_LABEL: []}
            for _ in range(rounds):
                for label, kubeconfig in zip(results, (direct, raw, masked), strict=True):
                    results[label].append(measure(kubeconfig, megabytes))
        finally:
            if gateway is not None:
                gateway.terminate()
                gateway.wait(30)
            sandbox.stop()
    return {label: max(values) for label, values in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best = throughput(args.megabytes, args.rounds)
    print(f"exec stream, {args.megabytes} MB of text, best of {args.rounds}:")
    for label, value in best.items():
        ratio = value / best[DIRECT_LABEL]
        print(f"  {label:<32} {value:8.1f} MB/s  ({ratio:.2f} of direct)")
    verdict = "meets" if best[RECORDED_LABEL] >= TARGET_MB_S else "misses"
    print(f"kubegate with recording {verdict} the {TARGET_MB_S:g} MB/s target")
    sys.exit(0 if verdict == "meets" else 1)


if __name__ == "__main__":
    main()
