"""Gateways as their own `kubegate serve` processes on the world's cluster and issuer: for tests of
what a process boundary changes (a SIGKILL, several replicas on one PostgreSQL store)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import World


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`kubegate serve` as its own process, on the world's cluster and issuer, with its own SQLite store
    unless given a store URL (several replicas share one PostgreSQL); `config` replaces sections of the
    world's kubegate.yaml; `workers` runs `serve --workers N` (ready once every worker has its socket)."""

    def __init__(
        self,
        world: World,
        root: Path,
        store_url: str | None = None,
        config: dict[str, Any] | None = None,
        workers: int = 1,
    ) -> None:
        self.root = root
        self.connection = world.env.connection
        root.mkdir(parents=True, exist_ok=True)
        self.db = root / "kubegate.db"
        self.port = free_port()
        doc = yaml.safe_load(world.env.config_file.read_text())
        doc["listen"] = {"address": f"127.0.0.1:{self.port}"}
        doc["state_dir"] = str(root / "state")
        doc["store"] = {"url": store_url or f"sqlite:///{self.db}"}
        doc["policy_dirs"] = []
        doc.update(config or {})
        self.config = root / "kubegate.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubegate", "serve", "--config", str(self.config), "--workers", str(workers)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ctx: ssl.SSLContext | None = None
        self.url = f"https://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ca = root / "state" / "tls" / "ca.crt"
            if ca.exists():
                try:
                    self.ctx = ssl.create_default_context(cafile=str(ca))
                    with urllib.request.urlopen(self.url + "/readyz", context=self.ctx, timeout=2) as r:
                        if r.status == 200 and (workers == 1 or len(self.worker_sockets()) == workers):
                            return
                except (OSError, urllib.error.URLError):
                    pass
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            time.sleep(0.2)
        raise AssertionError("gateway did not become ready")

    def worker_sockets(self) -> list[Path]:
        """Each worker's private socket (kubegate.mcp.workers), by name."""
        return sorted((self.root / "state" / "workers").glob("*.sock"))

    def cli(self, world: World, *args: str, sub: str = "audrey", groups: tuple[str, ...] = ("auditors",)) -> str:
        """`kubegate ...` against this gateway's admin API; its standard output."""
        auth = ["--server", self.url, "--token", world.token(sub, groups), "--ca", str(self.ca_file)]
        done = subprocess.run(
            [sys.executable, "-m", "kubegate", *args, *auth],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def get(self, path: str, token: str) -> tuple[int, dict]:
        req = urllib.request.Request(
            f"{self.url}/k8s/{self.connection}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def ca_file(self) -> Path:
        return self.root / "state" / "tls" / "ca.crt"

    def kubeconfig(self, path: Path, token: str) -> Path:
        """A kubeconfig that points kubectl at this gateway with a fixed token."""
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "gw",
            "clusters": [
                {
                    "name": "gw",
                    "cluster": {
                        "server": f"{self.url}/k8s/{self.connection}",
                        "certificate-authority": str(self.ca_file),
                    },
                }
            ],
            "users": [{"name": "gw", "user": {"token": token}}],
            "contexts": [{"name": "gw", "context": {"cluster": "gw", "user": "gw"}}],
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path
