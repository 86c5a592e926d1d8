"""One sandbox cluster per test session, served from its own thread and event loop so that the real
kubectl (a blocking subprocess) and async HTTP clients can both talk to it."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubegate.sandbox.cluster import SandboxCluster
from tests.sandbox.sandbox_kubectl import Kubectl


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxCluster]:
    cluster = SandboxCluster(tmp_path_factory.mktemp("sandbox-cluster"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sandbox-cluster", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(cluster.start(), loop).result(30)
    yield cluster
    asyncio.run_coroutine_threadsafe(cluster.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="session")
def kubectl_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubectl-home")


@pytest.fixture(scope="session")
def admin(sandbox: SandboxCluster, kubectl_home: Path) -> Kubectl:
    """kubectl as sandbox-admin (system:masters)."""
    return Kubectl(sandbox.write_kubeconfig(kubectl_home / "admin.kubeconfig", sandbox.admin_token), kubectl_home)


@pytest.fixture(scope="session")
def gateway(sandbox: SandboxCluster, kubectl_home: Path) -> Kubectl:
    """kubectl as kubegate-gateway: may impersonate, nothing else."""
    return Kubectl(sandbox.write_kubeconfig(kubectl_home / "gateway.kubeconfig"), kubectl_home)


@pytest.fixture
def namespace(admin: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    admin.run("create", "namespace", name)
    yield name
    admin.run("delete", "namespace", name, "--wait=false")
