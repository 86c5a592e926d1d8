"""Upstream identity end to end: real kubectl, the policy's role as a temporary binding the sandbox enforces."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from kubegate.app import GATEWAY, Gateway, build_app
from kubegate.config import Config
from kubegate.identity.model import Identity
from kubegate.listener import tls_files
from kubegate.tls import server_ssl_context
from kubegate.upstream.bindings import EXPIRES_AT, MANAGED_BY_LABEL, parse_rfc3339
from kubegate.upstream.credentials import Credentials
from kubegate.upstream.eks import role_session_name
from tests.conftest import World

pytestmark = pytest.mark.e2e
RBAC = "rbac.authorization.k8s.io"
DISCOVERY = ["/api", "/api/*", "/apis", "/apis/*", "/version"]


def gateway(world: World) -> Gateway:
    assert world.env.gateway is not None
    return world.env.gateway.runner.app[GATEWAY]


@pytest.fixture(scope="module")
def admin(world: World) -> Path:
    """A kubeconfig straight to the sandbox as its admin, to look at what kubegate left in the cluster."""
    return world.cluster.write_kubeconfig(world.root / "upstream-admin.kubeconfig", world.cluster.admin_token)


def managed(world: World, admin: Path, namespace: str) -> list[dict[str, Any]]:
    out = world.kubectl("get", "rolebindings", "-n", namespace, "-l", f"{MANAGED_BY_LABEL}=kubegate", "-o", "json",
                        kubeconfig=admin).stdout
    return list(json.loads(out)["items"])


def snapshot(world: World, admin: Path, *refs: str) -> list[dict[str, Any]]:
    return [json.loads(world.kubectl("get", *ref.split(), "-o", "json", kubeconfig=admin).stdout) for ref in refs]


@pytest.fixture
def pr(world: World) -> Iterator[tuple[str, str, str]]:
    """Namespaces pr-1-<tag> and pr-2-<tag> with a pod each, and a CI agent allowed in both; its policy names
    the role `view` in pr-1 only."""
    tag = uuid.uuid4().hex[:6]
    pr1, pr2, agent = f"pr-1-{tag}", f"pr-2-{tag}", f"agent-{tag}"
    world.cluster.seed([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (pr1, pr2)] + [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"web-{n}", "namespace": n},
         "spec": {"containers": [{"name": "web", "image": "nginx"}]}} for n in (pr1, pr2)])
    who = {"users": [f"sandbox:{agent}"]}
    world.set_policies(f"upstream-{tag}", [
        {"name": f"agent-discovery-{tag}", "subjects": who, "match": {"non_resource_urls": DISCOVERY},
         "action": "allow"},
        {"name": f"agent-views-pr-1-{tag}", "subjects": who, "match": {"namespaces": [pr1]}, "action": "allow",
         "role": "view"},
        {"name": f"agent-tries-pr-2-{tag}", "subjects": who, "match": {"namespaces": [pr2]}, "action": "allow"},
    ])
    try:
        yield pr1, pr2, agent
    finally:
        world.clear_policies(f"upstream-{tag}")


def test_view_in_pr1_lists_pods_and_the_cluster_itself_refuses_pr2(
        world: World, admin: Path, pr: tuple[str, str, str]) -> None:
    pr1, pr2, agent = pr
    cfg = world.kubeconfig(agent, ("ci-agents",))
    assert f"web-{pr1}" in world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg).stdout
    [binding] = managed(world, admin, pr1)
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"}
    assert binding["subjects"] == [{"apiGroup": RBAC, "kind": "User", "name": f"sandbox:{agent}"}]
    expires = parse_rfc3339(binding["metadata"]["annotations"][EXPIRES_AT])
    assert expires is not None and 3500 < expires - time.time() <= 3601

    before = len(world.cluster.requests)
    refused = world.kubectl("get", "pods", "-n", pr2, kubeconfig=cfg, check=False)
    assert refused.returncode != 0
    assert (f'Error from server (Forbidden): pods is forbidden: User "sandbox:{agent}" cannot list resource "pods" '
            f'in API group "" in the namespace "{pr2}"') in refused.stderr
    assert "kubegate" not in refused.stderr
    assert any(r.path == f"/api/v1/namespaces/{pr2}/pods" for r in world.cluster.requests[before:])
    assert managed(world, admin, pr2) == []


def test_after_the_ttl_the_binding_is_gone_and_a_new_request_binds_again(
        world: World, admin: Path, pr: tuple[str, str, str]) -> None:
    pr1, _, agent = pr
    cfg = world.kubeconfig(agent, ("ci-agents",))
    world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg)
    [first] = managed(world, admin, pr1)
    after_ttl = time.time() + 2 * 3600
    assert world.call(gateway(world).bindings["sandbox"].reap(after_ttl)) >= 1
    assert managed(world, admin, pr1) == []
    assert f"web-{pr1}" in world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg).stdout
    [again] = managed(world, admin, pr1)
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["metadata"]["uid"] != first["metadata"]["uid"]


def test_bindings_that_existed_before_a_session_are_unchanged_after_it(
        world: World, admin: Path, pr: tuple[str, str, str]) -> None:
    pr1, _, agent = pr
    stale = {EXPIRES_AT: "2000-01-01T00:00:00Z"}
    world.cluster.seed([
        {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": "team-view", "namespace": pr1},
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
         "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "team"}]},
        {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
         "metadata": {"name": "hand-made", "namespace": pr1, "annotations": stale},
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
         "subjects": [{"apiGroup": RBAC, "kind": "User", "name": f"sandbox:{agent}"}]},
        {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"ops-{pr1}", "labels": {MANAGED_BY_LABEL: "kubegate"}},
         "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
         "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "ops"}]},
    ])
    refs = (f"rolebinding team-view -n {pr1}", f"rolebinding hand-made -n {pr1}", f"clusterrolebinding ops-{pr1}",
            "clusterrolebinding cluster-admin", "clusterrolebinding kubegate-gateway")
    before = snapshot(world, admin, *refs)
    cfg = world.kubeconfig(agent, ("ci-agents",))
    world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg)
    world.kubectl("get", "pods", "-n", pr1, kubeconfig=world.kubeconfig())
    world.call(gateway(world).bindings["sandbox"].reap(time.time() + 2 * 3600))
    assert snapshot(world, admin, *refs) == before


def test_a_role_kubegate_may_not_bind_refuses_with_the_missing_permission(
        world: World, pr: tuple[str, str, str]) -> None:
    pr1, _, agent = pr
    role = f"secret-reader-{agent}"
    world.cluster.seed([{"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": role},
                         "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}])
    world.set_policies(f"unbindable-{agent}", [
        {"name": f"agent-reads-secrets-{agent}", "subjects": {"users": [f"sandbox:{agent}"]},
         "match": {"namespaces": [pr1], "resources": ["secrets"]}, "action": "allow", "role": role}])
    try:
        before = len(world.cluster.requests)
        out = world.kubectl("get", "secrets", "-n", pr1, kubeconfig=world.kubeconfig(agent, ("ci-agents",)),
                            check=False)
    finally:
        world.clear_policies(f"unbindable-{agent}")
    assert out.returncode != 0 and "Error from server (Forbidden)" in out.stderr
    assert f'lacks the permission bind on clusterroles.{RBAC} "{role}"' in out.stderr
    assert "attempting to grant RBAC permissions not currently held" in out.stderr
    assert not any(r.path == f"/api/v1/namespaces/{pr1}/secrets" for r in world.cluster.requests[before:])


class SessionNameTokens(Credentials):
    """Stands in for EKS: the caller's session name becomes the sandbox user `kubegate:<session name>`, as the
    access entry of docs/eks.md maps it; kubegate's own session is the sandbox's gateway identity."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def authorization(self, identity: Identity | None) -> str:
        if identity is None:
            return f"Bearer {self.world.cluster.gateway_token}"
        user = f"kubegate:{role_session_name(identity)}"
        token = hashlib.sha256(user.encode()).hexdigest()
        self.world.cluster.add_token(token, user, [])
        return f"Bearer {token}"


@pytest.fixture
def eks_gateway(world: World, pr: tuple[str, str, str]) -> Iterator[tuple[str, Path]]:
    """A second kubegate whose connection runs in eks-session-name mode against the sandbox."""
    pr1, pr2, agent = pr
    issuer = world.env.issuer
    who = {"users": [f"sandbox:{agent}"]}
    config = Config.model_validate({
        "listen": {"address": "127.0.0.1:0"}, "state_dir": str(world.root / f"eks-{agent}"),
        "identity": {"issuers": [{"url": issuer.url, "audience": "kubegate", "ca_file": str(issuer.ca_file),
                                  "username_prefix": "sandbox:"}]},
        "connections": [{"name": "eks", "server": world.cluster.url,
                         "certificate_authority": str(world.cluster.ca_file), "identity_mode": "eks-session-name",
                         "auth": {"eks": {"cluster": "sandbox", "region": "eu-west-1",
                                          "role_arn": "arn:aws:iam::111122223333:role/kubegate"}}}],
        "policies": [
            {"name": "discovery", "subjects": who, "match": {"non_resource_urls": DISCOVERY}, "action": "allow"},
            {"name": "views-pr-1", "subjects": who, "match": {"namespaces": [pr1]}, "action": "allow",
             "role": "view"},
            {"name": "tries-pr-2", "subjects": who, "match": {"namespaces": [pr2]}, "action": "allow"}],
    })
    app = build_app(config)
    app[GATEWAY].connections["eks"].credentials = SessionNameTokens(world)
    cert, key, ca = tls_files(config)
    runner = web.AppRunner(app)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(cert, key))
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    port = world.call(start())
    kubeconfig = world.root / f"eks-{agent}.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "eks",
        "clusters": [{"name": "eks", "cluster": {"server": f"https://127.0.0.1:{port}/k8s/eks",
                                                 "certificate-authority": str(ca)}}],
        "users": [{"name": "agent", "user": {"token": world.token(agent, ("ci-agents",))}}],
        "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "agent"}}]}))
    try:
        yield agent, kubeconfig
    finally:
        world.call(runner.cleanup())


def test_eks_session_name_mode_binds_the_session_user_without_impersonation(
        world: World, admin: Path, pr: tuple[str, str, str], eks_gateway: tuple[str, Path]) -> None:
    pr1, pr2, _ = pr
    agent, cfg = eks_gateway
    caller = Identity(issuer=world.env.issuer.url, subject=agent, username=f"sandbox:{agent}", groups=("ci-agents",))
    user = f"kubegate:{role_session_name(caller)}"
    before = len(world.cluster.requests)
    assert f"web-{pr1}" in world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg).stdout
    [binding] = managed(world, admin, pr1)
    assert binding["subjects"] == [{"apiGroup": RBAC, "kind": "User", "name": user}]
    listed = [r for r in world.cluster.requests[before:] if r.path == f"/api/v1/namespaces/{pr1}/pods"]
    assert listed and all("Impersonate-User" not in r.headers for r in listed)
    assert all(r.headers["Authorization"] != f"Bearer {world.cluster.gateway_token}" for r in listed)
    refused = world.kubectl("get", "pods", "-n", pr2, kubeconfig=cfg, check=False)
    assert f'pods is forbidden: User "{user}" cannot list resource "pods"' in refused.stderr
