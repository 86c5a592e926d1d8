"""Shared fixtures: ONE world (cluster, issuer, gateway) per test session, driven by real kubectl.

`world` runs on a real kube-apiserver and etcd (kubegate/sandbox/envtest.py, binaries from
KUBEBUILDER_ASSETS) with a kubelet stand-in: it is the judge of Kubernetes behaviour. `sandbox_world`
runs on the in-memory sandbox cluster, which shares kubegate's own parsers; it serves tests of the
sandbox itself and of the demo, never as the judge of how a cluster reads a request.

A world runs on its own event loop in a background thread, so tests call kubectl with plain
subprocesses while the gateway keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
import yaml

from kubegate.sandbox.envtest import developers_are_admins
from kubegate.store.engine import Store
from tests.databases import fresh_pg_database

T = TypeVar("T")
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl") or "kubectl"


# The real cluster's standing RBAC and policy for the e2e tier. The platform team has bound the
# `developers` group to cluster-admin (kubegate passes groups as Impersonate-Group); kubegate's own
# identity has exactly deploy/rbac.yaml, so the policy's roles are `view` and `edit` only. A CEL rule
# that reads request bodies is loaded throughout, so every write's body is judged in every test.
REAL_CLUSTER_RBAC: list[dict[str, Any]] = [developers_are_admins()]
REAL_CLUSTER_POLICIES: list[dict[str, Any]] = [
    {
        "name": "developers-work-everywhere",
        "subjects": {"groups": ["developers"]},
        "action": "allow",
        "mask": ["secret-values", "last-applied", "env-credentials", "serviceaccount-tokens", "credentials-in-text"],
    },
    {
        "name": "no-privileged-containers",
        "match": {"resources": ["pods"], "verbs": ["create", "update", "patch"]},
        "condition": "has(object.spec) && has(object.spec.containers) && object.spec.containers.exists(c, "
        "has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged)",
        "action": "deny",
        "message": "privileged containers are not allowed",
    },
    {
        "name": "kube-system-is-read-only",
        "match": {"namespaces": ["kube-system"], "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        "action": "deny",
        "message": "kube-system is managed by the platform team; change it through GitOps",
    },
    {
        "name": "namespace-deletion-needs-a-human",
        "match": {"verbs": ["delete"], "resources": ["namespaces"]},
        "action": "review",
        "reviewers": {"groups": ["platform-oncall"]},
    },
]


class World:
    """A running world and helpers to drive it as a user would."""

    def __init__(self, root: Path, real: bool = True) -> None:
        self.root = root
        self.real = real
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="world", daemon=True)
        self._thread.start()
        from kubegate.sandbox.environment import start_environment

        if real:
            from kubegate.sandbox.envtest import EnvtestCluster

            cluster = EnvtestCluster(root / "cluster")
            self.env = self.call(
                start_environment(
                    root / "world", cluster=cluster, connection="envtest", policies=REAL_CLUSTER_POLICIES
                ),
                timeout=120,
            )
            cluster.seed(REAL_CLUSTER_RBAC)
            cluster.control.ensure_namespace("default")
        else:
            self.env = self.call(start_environment(root / "world"))
        self._n = 0

    @property
    def control(self) -> Any:
        """The real control plane (audit log, admin API calls); only in the real world."""
        assert self.real, "this test needs the real cluster"
        return self.env.cluster.control

    def namespace(self, prefix: str = "t") -> str:
        """A fresh namespace with its default ServiceAccount (deleted namespaces stay Terminating here)."""
        self._n += 1
        name = f"{prefix}-{self._n}-{os.urandom(3).hex()}"
        if self.real:
            self.control.ensure_namespace(name)
        else:
            self.cluster.seed([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
        return name

    def pod(self, namespace: str, name: str = "app", **spec: Any) -> dict[str, Any]:
        """A pod on the kubelet stand-in's Node (no scheduler places pods here), created as the admin."""
        containers = spec.pop("containers", [{"name": "app", "image": "busybox"}])
        obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": self.env.cluster.node, "containers": containers, **spec},
        }
        self.env.cluster.seed([obj])
        return obj

    def raw(
        self,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        method: str = "GET",
        body: bytes | None = None,
        authorize: bool = True,
    ) -> tuple[int, Any]:
        """One HTTP request to the gateway's Kubernetes API (path after /k8s/<connection>), with a fresh
        token unless the headers carry Authorization or `authorize` is off; (status, JSON or text)."""
        assert self.env.gateway is not None and self.env.gateway.ca_file is not None
        sent = dict(headers or {})
        if authorize and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token()}"
        ctx = ssl.create_default_context(cafile=str(self.env.gateway.ca_file))
        req = urllib.request.Request(self.env.server + path, headers=sent, method=method, data=body)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def reached(self, marker: str, since: int = 0) -> list[Any]:
        """The requests that reached the real cluster since `since` (audit log, RequestReceived stage: written
        before the request runs) whose target contains `marker`."""
        return self.control.events(since, lambda e: e.stage == "RequestReceived" and marker in e.uri)

    def served(self, marker: str, since: int = 0, timeout: float = 10) -> list[Any]:
        """The cluster's record of each request that `reached` finds, once its answer is written: these carry
        who the cluster served (`impersonated`: the impersonation is read after RequestReceived)."""
        ids = {e.raw["auditID"] for e in self.reached(marker, since)}
        deadline = time.monotonic() + timeout
        while True:
            done = {
                e.raw["auditID"]: e
                for e in self.control.events(
                    since, lambda e: e.raw["auditID"] in ids and e.stage in ("ResponseStarted", "ResponseComplete")
                )
            }
            if set(done) == ids or time.monotonic() > deadline:
                return list(done.values())
            time.sleep(0.05)

    @property
    def gateway(self) -> Any:
        from kubegate.app import GATEWAY

        assert self.env.gateway is not None
        return self.env.gateway.runner.app[GATEWAY]

    def settle(self, timeout: float = 10) -> None:
        """Wait until no request is in the gateway and everything recorded so far is in the store: then the
        store holds all a finished kubectl command left, without sleeping for a batching window."""
        deadline = time.monotonic() + timeout
        while self.gateway.pipeline.active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self.gateway.pipeline.active, "requests still in the gateway"
        self.call(self.gateway.recorder.flush())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def cluster(self) -> Any:
        return self.env.cluster

    def token(
        self,
        sub: str = "alice",
        groups: tuple[str, ...] = ("developers",),
        claims: dict[str, Any] | None = None,
        lifetime: float = 3600,
    ) -> str:
        return self.env.issuer.mint(sub, list(groups), claims or {}, lifetime=lifetime)

    def kubeconfig(
        self,
        sub: str = "alice",
        groups: tuple[str, ...] = ("developers",),
        claims: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> Path:
        self._n += 1
        path = self.root / "kubeconfigs" / f"{sub}-{self._n}.yaml"
        return self.env.write_kubeconfig(path, token=token or self.token(sub, groups, claims))

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        cfg = kubeconfig or self.kubeconfig()
        proc = subprocess.run(
            [KUBECTL, f"--kubeconfig={cfg}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=kubectl_env(),
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def popen(self, *args: str, kubeconfig: Path | None = None) -> subprocess.Popen[str]:
        cfg = kubeconfig or self.kubeconfig()
        return subprocess.Popen(
            [KUBECTL, f"--kubeconfig={cfg}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=kubectl_env(),
        )

    def cli(
        self,
        *args: str,
        sub: str = "audrey",
        groups: tuple[str, ...] = ("auditors",),
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """`kubegate ...` as a separate process, authenticated against this world's admin API."""
        assert self.env.gateway is not None
        argv = [
            sys.executable,
            "-m",
            "kubegate",
            *args,
            "--server",
            self.env.gateway.url,
            "--token",
            self.token(sub, groups),
            "--ca",
            str(self.env.gateway.ca_file),
        ]
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
        gateway = self.gateway
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


def tier_unavailable(tier: str, why: str) -> NoReturn:
    """A tier whose tools this machine lacks says why it did not run; under CI (CI=true, which sets up
    every tool: scripts/test) that is a failure, so CI never passes without running it."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the {tier} tier cannot run: {why}", pytrace=False)
    pytest.skip(f"the {tier} tier did not run: {why}")


def _envtest_or_skip() -> None:
    """The real-cluster tier needs kube-apiserver and etcd."""
    from kubegate.sandbox.envtest import EnvtestUnavailable, assets_dir

    try:
        assets_dir()
    except EnvtestUnavailable as exc:
        tier_unavailable("real-cluster", str(exc))


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The world on a real kube-apiserver: the judge of Kubernetes behaviour."""
    _envtest_or_skip()
    w = World(tmp_path_factory.mktemp("kubegate"))
    try:
        yield w
    finally:
        w.close()


@pytest.fixture(scope="session")
def sandbox_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The world on the in-memory sandbox cluster (tests of the sandbox and the demo)."""
    w = World(tmp_path_factory.mktemp("kubegate-sandbox"), real=False)
    try:
        yield w
    finally:
        w.close()


# -- S3: moto's server on loopback, for anchors and export sinks -----------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        mp.setenv(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    mp.undo()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint)


@pytest.fixture
def locked_bucket(s3: Any) -> str:
    name = f"anchors-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name
