"""Upstream identity end to end on the real cluster: real kubectl, the policy's role as a temporary binding
that kube-apiserver's own RBAC enforces, and the audit log as the witness of who reached the cluster."""

from __future__ import annotations

import hashlib
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from yarl import URL

from kubegate.app import GATEWAY, Gateway, build_app
from kubegate.config import Config
from kubegate.identity.model import Identity
from kubegate.listener import tls_files
from kubegate.sandbox.envtest import GATEWAY_USER
from kubegate.tls import ensure_serving_cert, server_ssl_context
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
    """A kubeconfig straight to the real cluster as its admin, to look at what kubegate left in it."""
    return world.control.admin_kubeconfig(world.root / "upstream-admin.kubeconfig")


def managed(world: World, admin: Path, namespace: str) -> list[dict[str, Any]]:
    out = world.kubectl(
        "get", "rolebindings", "-n", namespace, "-l", f"{MANAGED_BY_LABEL}=kubegate", "-o", "json", kubeconfig=admin
    ).stdout
    return list(json.loads(out)["items"])


def snapshot(world: World, admin: Path, *refs: str) -> list[dict[str, Any]]:
    return [json.loads(world.kubectl("get", *ref.split(), "-o", "json", kubeconfig=admin).stdout) for ref in refs]


def allowed(world: World, user: str, groups: list[str], verb: str, resource: str, namespace: str) -> bool:
    """What the real cluster's RBAC says `user` may do (a SubjectAccessReview, asked as the admin)."""
    _, review = world.control.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": [*groups, "system:authenticated"],
                "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace},
            },
        },
    )
    return bool(review["status"].get("allowed"))


def only_as(events: list[Any], user: str) -> None:
    """Each request reached the cluster as kubegate impersonating `user`, never as kubegate itself."""
    assert events, "nothing reached the cluster"
    for event in events:
        assert event.user == GATEWAY_USER and (event.impersonated or {}).get("username") == user, event.raw


@pytest.fixture
def pr(world: World) -> Iterator[tuple[str, str, str]]:
    """Namespaces pr-1-<tag> and pr-2-<tag> with a pod each, and a CI agent allowed in both; its policy names
    the role `view` in pr-1 only. The agent holds no permanent RBAC in the cluster."""
    tag = uuid.uuid4().hex[:6]
    pr1, pr2, agent = f"pr-1-{tag}", f"pr-2-{tag}", f"agent-{tag}"
    world.cluster.seed(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (pr1, pr2)]
        + [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"web-{n}", "namespace": n},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            }
            for n in (pr1, pr2)
        ]
    )
    who = {"users": [f"sandbox:{agent}"]}
    world.set_policies(
        f"upstream-{tag}",
        [
            {
                "name": f"agent-discovery-{tag}",
                "subjects": who,
                "match": {"non_resource_urls": DISCOVERY},
                "action": "allow",
            },
            {
                "name": f"agent-views-pr-1-{tag}",
                "subjects": who,
                "match": {"namespaces": [pr1]},
                "action": "allow",
                "role": "view",
            },
            {"name": f"agent-tries-pr-2-{tag}", "subjects": who, "match": {"namespaces": [pr2]}, "action": "allow"},
        ],
    )
    try:
        yield pr1, pr2, agent
    finally:
        world.clear_policies(f"upstream-{tag}")


def test_view_in_pr1_lists_pods_and_the_cluster_itself_refuses_pr2(
    world: World, admin: Path, pr: tuple[str, str, str]
) -> None:
    pr1, pr2, agent = pr
    user = f"sandbox:{agent}"
    assert not allowed(world, user, ["ci-agents"], "list", "pods", pr1), "the agent must start with no RBAC"
    cfg = world.kubeconfig(agent, ("ci-agents",))
    mark = world.control.audit_mark()
    assert f"web-{pr1}" in world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg).stdout
    only_as(world.served(f"/api/v1/namespaces/{pr1}/pods", mark), user)
    [binding] = managed(world, admin, pr1)
    assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"}
    assert binding["subjects"] == [{"apiGroup": RBAC, "kind": "User", "name": user}]
    expires = parse_rfc3339(binding["metadata"]["annotations"][EXPIRES_AT])
    assert expires is not None and 3500 < expires - time.time() <= 3601
    # kubegate made the binding as itself (no impersonation), and the cluster accepted it.
    [made] = [e for e in world.served(f"/namespaces/{pr1}/rolebindings", mark) if e.verb == "create"]
    assert made.user == GATEWAY_USER and made.impersonated is None and made.code == 201

    # Exactly the policy's role: view lists, but the cluster itself refuses a delete the policy allows.
    mark = world.control.audit_mark()
    deleted = world.kubectl("delete", "pod", f"web-{pr1}", "-n", pr1, "--wait=false", kubeconfig=cfg, check=False)
    assert deleted.returncode != 0
    assert (
        f'pods "web-{pr1}" is forbidden: User "{user}" cannot delete resource "pods" in API group "" in the '
        f'namespace "{pr1}"'
    ) in deleted.stderr
    [refused_delete] = [e for e in world.served(f"/api/v1/namespaces/{pr1}/pods/web-{pr1}", mark) if e.verb == "delete"]
    assert refused_delete.code == 403
    only_as([refused_delete], user)
    assert world.control.exists(f"/api/v1/namespaces/{pr1}/pods/web-{pr1}")

    mark = world.control.audit_mark()
    refused = world.kubectl("get", "pods", "-n", pr2, kubeconfig=cfg, check=False)
    assert refused.returncode != 0
    assert (
        f'Error from server (Forbidden): pods is forbidden: User "{user}" cannot list resource "pods" '
        f'in API group "" in the namespace "{pr2}"'
    ) in refused.stderr
    assert "kubegate" not in refused.stderr
    served = world.served(f"/api/v1/namespaces/{pr2}/pods", mark)
    only_as(served, user)
    assert {e.code for e in served} == {403}, "the real apiserver's RBAC decided, not kubegate"
    assert managed(world, admin, pr2) == []


def test_after_the_ttl_the_binding_is_gone_and_a_new_request_binds_again(
    world: World, admin: Path, pr: tuple[str, str, str]
) -> None:
    pr1, _, agent = pr
    user = f"sandbox:{agent}"
    cfg = world.kubeconfig(agent, ("ci-agents",))
    world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg)
    [first] = managed(world, admin, pr1)
    assert allowed(world, user, ["ci-agents"], "list", "pods", pr1)
    after_ttl = time.time() + 2 * 3600
    assert world.call(gateway(world).bindings[world.env.connection].reap(after_ttl)) >= 1
    assert managed(world, admin, pr1) == []
    assert not allowed(world, user, ["ci-agents"], "list", "pods", pr1), "the reaped grant is gone from RBAC"
    assert f"web-{pr1}" in world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg).stdout
    [again] = managed(world, admin, pr1)
    assert again["metadata"]["name"] == first["metadata"]["name"]
    assert again["metadata"]["uid"] != first["metadata"]["uid"]


def test_bindings_that_existed_before_a_session_are_unchanged_after_it(
    world: World, admin: Path, pr: tuple[str, str, str]
) -> None:
    pr1, _, agent = pr
    stale = {EXPIRES_AT: "2000-01-01T00:00:00Z"}
    world.cluster.seed(
        [
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "team-view", "namespace": pr1},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "team"}],
            },
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "hand-made", "namespace": pr1, "annotations": stale},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": RBAC, "kind": "User", "name": f"sandbox:{agent}"}],
            },
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"ops-{pr1}", "labels": {MANAGED_BY_LABEL: "kubegate"}},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": RBAC, "kind": "Group", "name": "ops"}],
            },
        ]
    )
    refs = (
        f"rolebinding team-view -n {pr1}",
        f"rolebinding hand-made -n {pr1}",
        f"clusterrolebinding ops-{pr1}",
        "clusterrolebinding cluster-admin",
        "clusterrolebinding kubegate",
        "clusterrolebinding developers-are-admins",
    )
    before = snapshot(world, admin, *refs)
    cfg = world.kubeconfig(agent, ("ci-agents",))
    world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg)
    world.kubectl("get", "pods", "-n", pr1, kubeconfig=world.kubeconfig())
    assert len(managed(world, admin, pr1)) == 1, "the session did get its own temporary binding"
    world.call(gateway(world).bindings[world.env.connection].reap(time.time() + 2 * 3600))
    assert managed(world, admin, pr1) == [], "the reaper removed that one"
    assert snapshot(world, admin, *refs) == before


def test_a_role_kubegate_may_not_bind_refuses_with_the_missing_permission(
    world: World, pr: tuple[str, str, str]
) -> None:
    pr1, _, agent = pr
    role = f"secret-reader-{agent}"
    world.cluster.seed(
        [
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
            }
        ]
    )
    world.set_policies(
        f"unbindable-{agent}",
        [
            {
                "name": f"agent-reads-secrets-{agent}",
                "subjects": {"users": [f"sandbox:{agent}"]},
                "match": {"namespaces": [pr1], "resources": ["secrets"]},
                "action": "allow",
                "role": role,
            }
        ],
    )
    try:
        mark = world.control.audit_mark()
        out = world.kubectl(
            "get", "secrets", "-n", pr1, kubeconfig=world.kubeconfig(agent, ("ci-agents",)), check=False
        )
    finally:
        world.clear_policies(f"unbindable-{agent}")
    assert out.returncode != 0 and "Error from server (Forbidden)" in out.stderr
    assert f'lacks the permission bind on clusterroles.{RBAC} "{role}"' in out.stderr
    assert "attempting to grant RBAC permissions not currently held" in out.stderr
    # The real apiserver refused kubegate's own attempt to bind the role; the request itself never went.
    tried = [e for e in world.served(f"/namespaces/{pr1}/rolebindings", mark) if e.verb == "create"]
    assert tried and all(e.user == GATEWAY_USER and e.impersonated is None and e.code == 403 for e in tried)
    assert world.reached(f"/api/v1/namespaces/{pr1}/secrets", mark) == []


class SessionAuthenticator:
    """Stands in for EKS's authenticator in front of the real kube-apiserver: a token for a session name is
    served as user `kubegate:<session name>`, as the access entry of docs/eks.md maps it (here with a client
    certificate for that user), kubegate's own token as kubegate's own identity. Everything else in the request
    (path, query, body, any Impersonate-* header) reaches kube-apiserver as sent, so its audit log and RBAC judge."""

    HOP = frozenset(
        {
            "host",
            "authorization",
            "content-length",
            "transfer-encoding",
            "connection",
            "accept-encoding",
            "keep-alive",
            "upgrade",
        }
    )

    def __init__(self, world: World) -> None:
        self.world = world
        self.users: dict[str, str] = {}
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.ca_file: Path | None = None

    def _session(self, user: str | None) -> aiohttp.ClientSession:
        key = user or ""
        if key not in self._sessions:
            ctx = ssl.create_default_context(cafile=str(self.world.control.ca_file))
            if user is not None:
                cert = self.world.control.client_cert(user)
                ctx.load_cert_chain(str(cert.cert), str(cert.key))
            self._sessions[key] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx), auto_decompress=False)
        return self._sessions[key]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization", "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP}
        if authorization == f"Bearer {self.world.control.gateway_token}":
            session, headers["Authorization"] = self._session(None), authorization
        elif authorization.removeprefix("Bearer ") in self.users:
            session = self._session(self.users[authorization.removeprefix("Bearer ")])
        else:
            return web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "code": 401,
                    "reason": "Unauthorized",
                    "message": "Unauthorized",
                },
                status=401,
            )
        body = await request.read()
        url = URL(self.world.control.url + request.raw_path, encoded=True)
        async with session.request(
            request.method, url, headers=headers, data=body or None, allow_redirects=False
        ) as answer:
            raw = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "content-encoding")}
            return web.Response(status=answer.status, body=raw, headers=kept)

    async def start(self) -> None:
        certs = ensure_serving_cert(self.world.root / "eks-authenticator", ["127.0.0.1"], cn="eks-authenticator")
        self.ca_file = certs.ca
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs.cert, certs.key))
        await site.start()
        self.url = f"https://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        for session in self._sessions.values():
            await session.close()
        if self.runner is not None:
            await self.runner.cleanup()


class SessionNameTokens(Credentials):
    """Stands in for EKS credentials: one token per caller's session name, kubegate's own token for itself."""

    def __init__(self, world: World, authenticator: SessionAuthenticator) -> None:
        self.world = world
        self.authenticator = authenticator

    async def authorization(self, identity: Identity | None) -> str:
        if identity is None:
            return f"Bearer {self.world.control.gateway_token}"
        user = f"kubegate:{role_session_name(identity)}"
        token = hashlib.sha256(user.encode()).hexdigest()
        self.authenticator.users[token] = user
        return f"Bearer {token}"


@pytest.fixture
def eks_gateway(world: World, pr: tuple[str, str, str]) -> Iterator[tuple[str, Path]]:
    """A second kubegate whose connection runs in eks-session-name mode against the real cluster."""
    pr1, pr2, agent = pr
    issuer = world.env.issuer
    authenticator = SessionAuthenticator(world)
    world.call(authenticator.start())
    who = {"users": [f"sandbox:{agent}"]}
    config = Config.model_validate(
        {
            "listen": {"address": "127.0.0.1:0"},
            "state_dir": str(world.root / f"eks-{agent}"),
            "identity": {
                "issuers": [
                    {
                        "url": issuer.url,
                        "audience": "kubegate",
                        "ca_file": str(issuer.ca_file),
                        "username_prefix": "sandbox:",
                    }
                ]
            },
            "connections": [
                {
                    "name": "eks",
                    "server": authenticator.url,
                    "certificate_authority": str(authenticator.ca_file),
                    "identity_mode": "eks-session-name",
                    "auth": {
                        "eks": {
                            "cluster": "envtest",
                            "region": "eu-west-1",
                            "role_arn": "arn:aws:iam::111122223333:role/kubegate",
                        }
                    },
                }
            ],
            "policies": [
                {"name": "discovery", "subjects": who, "match": {"non_resource_urls": DISCOVERY}, "action": "allow"},
                {
                    "name": "views-pr-1",
                    "subjects": who,
                    "match": {"namespaces": [pr1]},
                    "action": "allow",
                    "role": "view",
                },
                {"name": "tries-pr-2", "subjects": who, "match": {"namespaces": [pr2]}, "action": "allow"},
            ],
        }
    )
    app = build_app(config)
    app[GATEWAY].connections["eks"].credentials = SessionNameTokens(world, authenticator)
    cert, key, ca = tls_files(config)
    runner = web.AppRunner(app)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(cert, key))
        await site.start()
        return int(runner.addresses[0][1])

    port = world.call(start())
    kubeconfig = world.root / f"eks-{agent}.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "eks",
                "clusters": [
                    {
                        "name": "eks",
                        "cluster": {"server": f"https://127.0.0.1:{port}/k8s/eks", "certificate-authority": str(ca)},
                    }
                ],
                "users": [{"name": "agent", "user": {"token": world.token(agent, ("ci-agents",))}}],
                "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "agent"}}],
            }
        )
    )
    try:
        yield agent, kubeconfig
    finally:
        world.call(runner.cleanup())
        world.call(authenticator.stop())


def test_eks_session_name_mode_binds_the_session_user_without_impersonation(
    world: World, admin: Path, pr: tuple[str, str, str], eks_gateway: tuple[str, Path]
) -> None:
    pr1, pr2, _ = pr
    agent, cfg = eks_gateway
    caller = Identity(issuer=world.env.issuer.url, subject=agent, username=f"sandbox:{agent}", groups=("ci-agents",))
    user = f"kubegate:{role_session_name(caller)}"
    mark = world.control.audit_mark()
    assert f"web-{pr1}" in world.kubectl("get", "pods", "-n", pr1, kubeconfig=cfg).stdout
    [binding] = managed(world, admin, pr1)
    assert binding["subjects"] == [{"apiGroup": RBAC, "kind": "User", "name": user}]
    listed = world.served(f"/api/v1/namespaces/{pr1}/pods", mark)
    assert listed and all(e.user == user and e.impersonated is None and e.code == 200 for e in listed), [
        e.raw for e in listed
    ]
    [made] = [e for e in world.served(f"/namespaces/{pr1}/rolebindings", mark) if e.verb == "create"]
    assert made.user == GATEWAY_USER and made.impersonated is None
    mark = world.control.audit_mark()
    refused = world.kubectl("get", "pods", "-n", pr2, kubeconfig=cfg, check=False)
    assert f'pods is forbidden: User "{user}" cannot list resource "pods"' in refused.stderr
    served = world.served(f"/api/v1/namespaces/{pr2}/pods", mark)
    assert served and all(e.user == user and e.impersonated is None and e.code == 403 for e in served)
