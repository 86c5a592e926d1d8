"""Shared fixtures: ONE sandbox world (cluster, issuer, gateway) per test session, driven by real kubectl.

The world runs on its own event loop in a background thread, so tests call kubectl with plain
subprocesses while the gateway keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from kubegate.store.engine import Store
from tests.databases import fresh_pg_database

T = TypeVar("T")
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl") or "kubectl"


class World:
    """The running sandbox world and helpers to drive it as a user would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sandbox-world", daemon=True)
        self._thread.start()
        from kubegate.sandbox.environment import start_environment

        self.env = self.call(start_environment(root / "world"))
        self._n = 0

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def cluster(self) -> Any:
        return self.env.cluster

    def token(self, sub: str = "alice", groups: tuple[str, ...] = ("developers",),
              claims: dict[str, Any] | None = None, lifetime: float = 3600) -> str:
        return self.env.issuer.mint(sub, list(groups), claims or {}, lifetime=lifetime)

    def kubeconfig(self, sub: str = "alice", groups: tuple[str, ...] = ("developers",),
                   claims: dict[str, Any] | None = None, token: str | None = None) -> Path:
        self._n += 1
        path = self.root / "kubeconfigs" / f"{sub}-{self._n}.yaml"
        return self.env.write_kubeconfig(path, token=token or self.token(sub, groups, claims))

    def kubectl(self, *args: str, kubeconfig: Path | None = None, input: str | None = None,
                check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cfg = kubeconfig or self.kubeconfig()
        proc = subprocess.run([KUBECTL, f"--kubeconfig={cfg}", *args], input=input, capture_output=True,
                              text=True, timeout=timeout, env=kubectl_env())
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def popen(self, *args: str, kubeconfig: Path | None = None) -> subprocess.Popen[str]:
        cfg = kubeconfig or self.kubeconfig()
        return subprocess.Popen([KUBECTL, f"--kubeconfig={cfg}", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=kubectl_env())

    def cli(self, *args: str, sub: str = "audrey", groups: tuple[str, ...] = ("auditors",),
            check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`kubegate ...` as a separate process, authenticated against this world's admin API."""
        assert self.env.gateway is not None
        argv = [sys.executable, "-m", "kubegate", *args, "--server", self.env.gateway.url,
                "--token", self.token(sub, groups), "--ca", str(self.env.gateway.ca_file)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubegate {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def set_policies(self, name: str, rules: list[dict[str, Any]]) -> None:
        """Write a policy file and wait until the gateway has loaded it."""
        path = self.env.policy_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"policies": rules}))
        self._wait_policy(lambda names: all(r["name"] in names for r in rules))

    def clear_policies(self, name: str) -> None:
        path = self.env.policy_dir / f"{name}.yaml"
        rules = yaml.safe_load(path.read_text())["policies"] if path.exists() else []
        path.unlink(missing_ok=True)
        self._wait_policy(lambda names: not any(r["name"] in names for r in rules))

    def _wait_policy(self, done: Any) -> None:
        from kubegate.app import GATEWAY

        gateway = self.env.gateway.runner.app[GATEWAY]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if done({r.name for r in gateway.policy.rules}):
                return
            time.sleep(0.1)
        raise AssertionError(f"policy not reloaded: {gateway.policy.status()}")

    def close(self) -> None:
        self.call(self.env.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def kubectl_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["HOME"] = os.environ.get("HOME", "/tmp")
    return env


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'kubegate.db'}"
        return
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await Store.open(store_url)
    yield s
    await s.close()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = World(tmp_path_factory.mktemp("kubegate"))
    try:
        yield w
    finally:
        w.close()
