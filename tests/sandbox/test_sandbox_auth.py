"""Authentication, impersonation and RBAC as kubectl meets them."""

from __future__ import annotations

import secrets
from pathlib import Path

from kubegate.sandbox.cluster import SandboxCluster
from tests.sandbox.sandbox_kubectl import Kubectl


def _binding(namespace: str, name: str, role: str, user: str) -> dict[str, object]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def test_whoami_as_admin_and_as_an_impersonated_user(admin: Kubectl, gateway: Kubectl) -> None:
    assert "sandbox-admin" in admin.run("auth", "whoami").stdout
    out = gateway.run("auth", "whoami", "--as", "alice", "--as-group", "devs").stdout
    assert "alice" in out and "[devs system:authenticated]" in out


def test_can_i_follows_rbac_for_the_impersonated_user(
    gateway: Kubectl, sandbox: SandboxCluster, namespace: str
) -> None:
    denied = gateway.run("auth", "can-i", "list", "pods", "-n", namespace, "--as", "carol", check=False)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    sandbox.seed([_binding(namespace, "carol-view", "view", "carol")])
    assert gateway.run("auth", "can-i", "list", "pods", "-n", namespace, "--as", "carol").stdout.strip() == "yes"
    assert (
        gateway.run(
            "auth", "can-i", "get", "pods", "--subresource=log", "-n", namespace, "--as", "carol"
        ).stdout.strip()
        == "yes"
    )
    assert (
        gateway.run("auth", "can-i", "list", "secrets", "-n", namespace, "--as", "carol", check=False).stdout.strip()
        == "no"
    )


def test_forbidden_messages_match_kube(gateway: Kubectl, sandbox: SandboxCluster, namespace: str) -> None:
    listing = gateway.run("get", "pods", "-n", namespace, "--as", "dave", check=False)
    assert listing.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "dave" cannot list resource "pods" in API group '
        f'"" in the namespace "{namespace}"'
    )
    nodes = gateway.run("get", "clusterroles", "--as", "dave", check=False)
    assert (
        'User "dave" cannot list resource "clusterroles" in API group "rbac.authorization.k8s.io" at the '
        "cluster scope" in nodes.stderr
    )
    sandbox.seed(
        [
            _binding(namespace, "dave-pods", "dave-pod-reader", "dave"),
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "dave-pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
            },
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "namespace": namespace},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        ]
    )
    logs = gateway.run("logs", "p", "-n", namespace, "--as", "dave", check=False)
    assert logs.stderr.strip() == (
        'Error from server (Forbidden): pods "p" is forbidden: User "dave" cannot get resource "pods/log" in API '
        f'group "" in the namespace "{namespace}"'
    )


def test_the_gateway_identity_has_no_rights_of_its_own(gateway: Kubectl) -> None:
    out = gateway.run("get", "pods", "-n", "default", check=False)
    assert 'User "kubegate-gateway" cannot list resource "pods"' in out.stderr


def test_impersonation_is_refused_without_the_right(sandbox: SandboxCluster, kubectl_home: Path) -> None:
    token = secrets.token_urlsafe(16)
    sandbox.add_token(token, "mallory", ["staff"])
    mallory = Kubectl(sandbox.write_kubeconfig(kubectl_home / "mallory.kubeconfig", token), kubectl_home)
    out = mallory.run("get", "pods", "--as", "alice", check=False)
    assert out.stderr.strip() == (
        'Error from server (Forbidden): users "alice" is forbidden: User "mallory" cannot impersonate resource '
        '"users" in API group "" at the cluster scope'
    )


def test_unknown_token_is_unauthorized(sandbox: SandboxCluster, kubectl_home: Path) -> None:
    stranger = Kubectl(sandbox.write_kubeconfig(kubectl_home / "stranger.kubeconfig", "not-a-token"), kubectl_home)
    out = stranger.run("get", "pods", check=False)
    assert "error: You must be logged in to the server (Unauthorized)" in out.stderr
