"""Temporary bindings against the sandbox cluster, which enforces RBAC on kubegate's own identity (create,
bind, resourceVersion preconditions) as kube-apiserver does."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubegate.sandbox.cluster import SandboxCluster
from kubegate.upstream.bindings import (
    EXPIRES_AT,
    IDENTITY,
    MANAGED_BY_LABEL,
    SESSION,
    BindingError,
    BindingSpec,
    TemporaryBindings,
    binding_for,
    parse_rfc3339,
    rfc3339,
)
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection

RBAC = "rbac.authorization.k8s.io"
T0 = 1_900_000_000.0
TTL = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SandboxCluster]:
    sandbox = SandboxCluster(tmp_path_factory.mktemp("bindings-cluster"))
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


@pytest.fixture
def ns(cluster: SandboxCluster) -> str:
    name = f"b-{uuid.uuid4().hex[:8]}"
    cluster.seed([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])
    return name


def connection(cluster: SandboxCluster, tmp: Path, token: str | None = None) -> Connection:
    kubeconfig = cluster.write_kubeconfig(tmp / f"{uuid.uuid4().hex}.kubeconfig", token)
    return Connection(ConnectionConfig(name="sandbox", auth={"kubeconfig": {"path": kubeconfig}}))


@pytest.fixture
async def conn(cluster: SandboxCluster, tmp_path: Path) -> AsyncIterator[Connection]:
    c = connection(cluster, tmp_path)
    yield c
    await c.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bindings(conn: Connection, clock: Clock) -> TemporaryBindings:
    return TemporaryBindings(conn, TTL, clock=clock)


def stored(cluster: SandboxCluster, spec: BindingSpec) -> dict[str, Any] | None:
    return cluster.store.get(f"{RBAC}/{spec.resource}", spec.namespace, spec.name)


def binding_calls(cluster: SandboxCluster, since: int) -> list[str]:
    return [f"{r.method} {r.path}" for r in cluster.requests[since:] if f"/apis/{RBAC}/" in r.path]


def role_binding(
    ns: str,
    name: str,
    role: str,
    user: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "annotations": annotations or {}},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}],
    }


def test_names_are_deterministic_per_user_role_and_namespace() -> None:
    spec = binding_for("idp:alice", "view", "namespace", "pr-1")
    assert spec is not None and spec == binding_for("idp:alice", "view", "namespace", "pr-1")
    assert (spec.kind, spec.namespace, spec.role_kind, spec.role) == ("RoleBinding", "pr-1", "ClusterRole", "view")
    assert re.fullmatch(r"kubegate-[a-z2-7]{16}", spec.name)
    variants = [
        ("idp:bob", "view", "namespace", "pr-1"),
        ("idp:alice", "edit", "namespace", "pr-1"),
        ("idp:alice", "view", "namespace", "pr-2"),
        ("idp:alice", "view", "cluster", "pr-1"),
        ("idp:alice", "Role/view", "namespace", "pr-1"),
    ]
    others = [binding_for(*v) for v in variants]
    assert len({spec.name, *(o.name for o in others if o is not None)}) == 6


def test_scope_decides_the_kind_of_binding() -> None:
    cluster_wide = binding_for("idp:alice", "view", "cluster", "pr-1")
    assert cluster_wide is not None and (cluster_wide.kind, cluster_wide.namespace) == ("ClusterRoleBinding", "")
    role = binding_for("idp:alice", "Role/deployer", "namespace", "pr-1")
    assert role is not None and (role.role_kind, role.role) == ("Role", "deployer")
    assert binding_for("idp:alice", "view", "namespace", "") is None
    with pytest.raises(ValueError, match="Role 'deployer' cluster-wide"):
        binding_for("idp:alice", "Role/deployer", "cluster", "pr-1")


def test_expiry_times_are_rfc3339_utc() -> None:
    assert rfc3339(T0) == "2030-03-17T17:46:40Z"
    assert parse_rfc3339("2030-03-17T17:46:40Z") == T0
    assert parse_rfc3339("soon") is None and parse_rfc3339("2030-03-17T17:46:40") is None


async def test_ensure_creates_a_labelled_annotated_binding_as_kubegate_itself(
    cluster: SandboxCluster, bindings: TemporaryBindings, ns: str
) -> None:
    spec = binding_for("idp:alice", "view", "namespace", ns)
    assert spec is not None
    before = len(cluster.requests)
    ensured = await bindings.ensure(spec, "idp:alice", "session-1")
    assert ensured.action == "created" and ensured.expires_at == T0 + TTL
    obj = stored(cluster, spec)
    assert obj is not None
    assert obj["metadata"]["labels"] == {MANAGED_BY_LABEL: "kubegate"}
    assert obj["metadata"]["annotations"] == {
        IDENTITY: "idp:alice",
        SESSION: "session-1",
        EXPIRES_AT: rfc3339(T0 + TTL),
    }
    assert obj["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"}
    assert obj["subjects"] == [{"apiGroup": RBAC, "kind": "User", "name": "idp:alice"}]
    seen = cluster.requests[before:]
    assert [f"{r.method} {r.path}" for r in seen] == [f"GET {spec.object_path}", f"POST {spec.collection_path}"]
    assert all(r.headers["Authorization"] == f"Bearer {cluster.gateway_token}" for r in seen)
    assert not [k for r in seen for k in r.headers if k.lower().startswith("impersonate")]


async def test_renewal_happens_at_most_once_a_minute(
    cluster: SandboxCluster, bindings: TemporaryBindings, clock: Clock, ns: str
) -> None:
    spec = binding_for("idp:alice", "edit", "namespace", ns)
    assert spec is not None
    await bindings.ensure(spec, "idp:alice", "s1")
    first = stored(cluster, spec)
    before = len(cluster.requests)
    clock.now = T0 + 59
    assert (await bindings.ensure(spec, "idp:alice", "s1")).action == "cached"
    assert binding_calls(cluster, before) == []
    clock.now = T0 + 61
    renewed = await bindings.ensure(spec, "idp:alice", "s2")
    assert renewed.action == "renewed" and renewed.expires_at == T0 + 61 + TTL
    assert binding_calls(cluster, before) == [f"GET {spec.object_path}", f"PATCH {spec.object_path}"]
    obj = stored(cluster, spec)
    assert obj is not None and first is not None
    assert obj["metadata"]["annotations"][EXPIRES_AT] == rfc3339(T0 + 61 + TTL)
    assert obj["metadata"]["annotations"][SESSION] == "s2"
    assert obj["metadata"]["uid"] == first["metadata"]["uid"]


async def test_concurrent_requests_make_one_binding(
    cluster: SandboxCluster, bindings: TemporaryBindings, ns: str
) -> None:
    spec = binding_for("idp:carol", "view", "namespace", ns)
    assert spec is not None
    before = len(cluster.requests)
    results = await asyncio.gather(*(bindings.ensure(spec, "idp:carol", "s") for _ in range(5)))
    assert sorted(r.action for r in results) == ["cached"] * 4 + ["created"]
    assert binding_calls(cluster, before).count(f"POST {spec.collection_path}") == 1


async def test_cluster_scope_makes_a_cluster_role_binding(cluster: SandboxCluster, bindings: TemporaryBindings) -> None:
    spec = binding_for(f"idp:{uuid.uuid4().hex[:6]}", "view", "cluster", "")
    assert spec is not None
    assert (await bindings.ensure(spec, spec.user, "s")).action == "created"
    obj = stored(cluster, spec)
    assert obj is not None and obj["kind"] == "ClusterRoleBinding" and "namespace" not in obj["metadata"]


async def test_a_namespaced_role_is_bound_in_its_namespace(
    cluster: SandboxCluster, bindings: TemporaryBindings, ns: str
) -> None:
    # kubegate may bind a Role whose permissions it holds itself (RBAC escalation check)
    cluster.seed(
        [
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "Role",
                "metadata": {"name": "read-bindings", "namespace": ns},
                "rules": [{"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["get"]}],
            }
        ]
    )
    spec = binding_for("idp:dana", "Role/read-bindings", "namespace", ns)
    assert spec is not None
    await bindings.ensure(spec, "idp:dana", "s")
    obj = stored(cluster, spec)
    assert obj is not None and obj["roleRef"] == {"apiGroup": RBAC, "kind": "Role", "name": "read-bindings"}


async def test_a_namespace_that_does_not_exist_is_skipped_and_not_remembered(
    cluster: SandboxCluster, bindings: TemporaryBindings
) -> None:
    spec = binding_for("idp:alice", "view", "namespace", "no-such-namespace")
    assert spec is not None
    assert (await bindings.ensure(spec, "idp:alice", "s")).action == "skipped"
    before = len(cluster.requests)
    assert (await bindings.ensure(spec, "idp:alice", "s")).action == "skipped"
    assert binding_calls(cluster, before) != []


async def test_missing_bind_right_refuses_naming_it_with_the_clusters_words(
    cluster: SandboxCluster, bindings: TemporaryBindings, ns: str
) -> None:
    cluster.seed(
        [
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "secret-reader"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            }
        ]
    )
    spec = binding_for("idp:alice", "secret-reader", "namespace", ns)
    assert spec is not None
    with pytest.raises(BindingError) as caught:
        await bindings.ensure(spec, "idp:alice", "s")
    err = caught.value
    assert (err.code, err.reason) == (403, "Forbidden")
    assert f'lacks the permission bind on clusterroles.{RBAC} "secret-reader"' in err.message
    assert "deploy/rbac.yaml" in err.message
    assert "is attempting to grant RBAC permissions not currently held" in err.message
    assert stored(cluster, spec) is None


async def test_missing_create_right_refuses_naming_it(cluster: SandboxCluster, tmp_path: Path, ns: str) -> None:
    cluster.add_token("reader-token", "binding-reader", [])
    cluster.seed(
        [
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "binding-reader"},
                "rules": [{"apiGroups": [RBAC], "resources": ["rolebindings"], "verbs": ["get", "list"]}],
            },
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "binding-reader"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "binding-reader"},
                "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "binding-reader"}],
            },
        ]
    )
    conn = connection(cluster, tmp_path, "reader-token")
    try:
        spec = binding_for("idp:alice", "view", "namespace", ns)
        assert spec is not None
        with pytest.raises(BindingError) as caught:
            await TemporaryBindings(conn, TTL).ensure(spec, "idp:alice", "s")
    finally:
        await conn.close()
    assert caught.value.code == 403
    assert f'lacks the permission create on rolebindings.{RBAC} in namespace "{ns}"' in caught.value.message
    assert 'User "binding-reader" cannot create resource "rolebindings"' in caught.value.message


async def test_a_binding_of_that_name_not_made_by_kubegate_is_never_changed(
    cluster: SandboxCluster, bindings: TemporaryBindings, ns: str
) -> None:
    spec = binding_for("idp:alice", "view", "namespace", ns)
    assert spec is not None
    cluster.seed([role_binding(ns, spec.name, "view", "idp:alice")])
    before = stored(cluster, spec)
    with pytest.raises(BindingError) as caught:
        await bindings.ensure(spec, "idp:alice", "s")
    assert caught.value.code == 409 and "never changes bindings it did not make" in caught.value.message
    assert stored(cluster, spec) == before


async def test_an_unreachable_cluster_fails_closed(tmp_path: Path) -> None:
    conn = Connection(ConnectionConfig(name="gone", server="https://127.0.0.1:9", auth={"token": "t"}))
    try:
        spec = binding_for("idp:alice", "view", "namespace", "pr-1")
        assert spec is not None
        with pytest.raises(BindingError) as caught:
            await TemporaryBindings(conn, TTL).ensure(spec, "idp:alice", "s")
    finally:
        await conn.close()
    assert caught.value.code == 502 and "could not reach the API server of connection gone" in caught.value.message
    assert "temporary bindings" in caught.value.message and "not forwarded" in caught.value.message


@pytest.fixture
def foreign(cluster: SandboxCluster, ns: str) -> Iterator[list[tuple[str, str, str]]]:
    """Bindings kubegate did not make: permanent, label without expiry, expired annotation without label."""
    expired = {EXPIRES_AT: rfc3339(T0 - 10)}
    cluster.seed(
        [
            role_binding(ns, "team-view", "view", "team"),
            role_binding(ns, "labelled-by-hand", "view", "someone", labels={MANAGED_BY_LABEL: "kubegate"}),
            role_binding(ns, "annotated-by-hand", "view", "someone", annotations=expired),
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"ops-{ns}", "annotations": expired},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "ops"}],
            },
        ]
    )
    yield [(f"{RBAC}/rolebindings", ns, n) for n in ("team-view", "labelled-by-hand", "annotated-by-hand")] + [
        (f"{RBAC}/clusterrolebindings", "", f"ops-{ns}")
    ]


async def test_reaper_deletes_only_its_own_expired_bindings(
    cluster: SandboxCluster, bindings: TemporaryBindings, clock: Clock, ns: str, foreign: list[tuple[str, str, str]]
) -> None:
    before = {key: cluster.store.get(*key) for key in foreign}
    old = binding_for("idp:old", "view", "namespace", ns)
    fresh = binding_for("idp:fresh", "view", "cluster", "")
    assert old is not None and fresh is not None
    await bindings.ensure(old, "idp:old", "s")
    clock.now = T0 + TTL
    await bindings.ensure(fresh, "idp:fresh", "s")
    assert await bindings.reap(T0 + TTL + 1) >= 1
    assert stored(cluster, old) is None and stored(cluster, fresh) is not None
    assert {key: cluster.store.get(*key) for key in foreign} == before
    # forgotten: the next request for it binds again
    clock.now = T0 + TTL + 2
    assert (await bindings.ensure(old, "idp:old", "s")).action == "created"


async def test_several_replicas_reap_the_same_binding_safely(cluster: SandboxCluster, tmp_path: Path, ns: str) -> None:
    conns = [connection(cluster, tmp_path), connection(cluster, tmp_path)]
    try:
        clock = Clock()
        first, second = (TemporaryBindings(c, TTL, clock=clock) for c in conns)
        spec = binding_for("idp:replicated", "view", "namespace", ns)
        assert spec is not None
        await first.ensure(spec, "idp:replicated", "s")
        later = T0 + TTL + 1
        counts = await asyncio.gather(first.reap(later), second.reap(later))
        assert stored(cluster, spec) is None
        assert sum(counts) >= 1
        clock.now = later
        assert (await first.ensure(spec, "idp:replicated", "s")).action == "created"
    finally:
        for c in conns:
            await c.close()


async def test_reaper_leaves_a_binding_renewed_after_it_was_listed(
    cluster: SandboxCluster, tmp_path: Path, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conns = [connection(cluster, tmp_path), connection(cluster, tmp_path)]
    try:
        clock = Clock()
        reaper, user = (TemporaryBindings(c, TTL, clock=clock) for c in conns)
        spec = binding_for("idp:busy", "view", "namespace", ns)
        assert spec is not None
        await user.ensure(spec, "idp:busy", "s")
        listed = reaper._list_managed

        async def list_then_renew(resource: str) -> list[dict[str, Any]]:
            items = await listed(resource)
            if resource == "rolebindings":
                clock.now = T0 + TTL + 1  # expired as listed; renewed before the reaper deletes it
                assert (await user.ensure(spec, "idp:busy", "s")).action == "renewed"
            return items

        monkeypatch.setattr(reaper, "_list_managed", list_then_renew)
        await reaper.reap(T0 + TTL + 1)
        obj = stored(cluster, spec)
        assert obj is not None and obj["metadata"]["annotations"][EXPIRES_AT] == rfc3339(T0 + 2 * TTL + 1)
    finally:
        for c in conns:
            await c.close()


async def test_the_reaper_keeps_running_after_a_failed_round(
    bindings: TemporaryBindings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rounds: list[float | None] = []
    done = asyncio.Event()

    async def reap(now: float | None = None) -> int:
        rounds.append(now)
        if len(rounds) == 1:
            raise BindingError(502, "cluster unreachable", "BadGateway")
        done.set()
        return 0

    monkeypatch.setattr(bindings, "reap", reap)
    task = asyncio.create_task(bindings.run_reaper(interval=0))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(rounds) >= 2
