"""What a fresh cluster holds: the standard namespaces and the bootstrap RBAC policy (a subset of
kube-apiserver's), plus the narrow role of the gateway's own identity."""

from __future__ import annotations

from typing import Any

GATEWAY_USER = "kubegate-gateway"
RBAC = "rbac.authorization.k8s.io/v1"
_BOOT = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_WORKLOADS_CORE = [
    "pods",
    "pods/log",
    "pods/status",
    "configmaps",
    "services",
    "services/status",
    "events",
    "serviceaccounts",
]
_WORKLOADS_APPS = ["deployments", "deployments/scale", "deployments/status"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": name, **_BOOT}, "rules": rules}


def _cluster_binding(name: str, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": RBAC,
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, **_BOOT},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def _group(name: str) -> dict[str, str]:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name}


VIEW_RULES = [
    _rule([""], [*_WORKLOADS_CORE, "namespaces", "namespaces/status"], READ),
    _rule(["apps"], _WORKLOADS_APPS, READ),
]
EDIT_RULES = [
    *VIEW_RULES,
    _rule([""], ["secrets"], READ),
    _rule([""], ["pods", "configmaps", "secrets", "services", "serviceaccounts", "events"], WRITE),
    _rule([""], ["pods/exec", "pods/attach", "pods/portforward"], ["create", "get"]),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule(["apps"], ["deployments", "deployments/scale"], WRITE),
]
ADMIN_RULES = [
    *EDIT_RULES,
    _rule(["rbac.authorization.k8s.io"], ["roles", "rolebindings"], READ + WRITE),
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
]
DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
]


def cluster_objects() -> list[dict[str, Any]]:
    """Bootstrap objects in creation order (namespaces first)."""
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in ("default", "kube-system", "kube-public", "kube-node-lease")
    ]
    roles = [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _cluster_role("admin", ADMIN_RULES),
        _cluster_role("edit", EDIT_RULES),
        _cluster_role("view", VIEW_RULES),
        _cluster_role("system:discovery", [{"nonResourceURLs": DISCOVERY_URLS, "verbs": ["get"]}]),
        _cluster_role(
            "system:public-info-viewer",
            [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}],
        ),
        _cluster_role(
            "system:basic-user",
            [
                _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
                _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
            ],
        ),
        _cluster_role(
            GATEWAY_USER,
            [
                _rule([""], ["users", "groups", "serviceaccounts"], ["impersonate"]),
                # RBAC has no `userextras/*` wildcard: `*` in this group covers uids and every userextras key.
                _rule(["authentication.k8s.io"], ["*"], ["impersonate"]),
                # temporary bindings, as deploy/rbac.yaml grants them: manage bindings, bind the standard roles only
                _rule(
                    ["rbac.authorization.k8s.io"],
                    ["rolebindings", "clusterrolebindings"],
                    ["get", "list", "create", "update", "patch", "delete"],
                ),
                {
                    "apiGroups": ["rbac.authorization.k8s.io"],
                    "resources": ["clusterroles"],
                    "verbs": ["bind"],
                    "resourceNames": ["cluster-admin", "admin", "edit", "view"],
                },
            ],
        ),
    ]
    bindings = [
        _cluster_binding("cluster-admin", "cluster-admin", [_group("system:masters")]),
        _cluster_binding("system:discovery", "system:discovery", [_group("system:authenticated")]),
        _cluster_binding("system:basic-user", "system:basic-user", [_group("system:authenticated")]),
        _cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [_group("system:authenticated"), _group("system:unauthenticated")],
        ),
        _cluster_binding(
            GATEWAY_USER,
            GATEWAY_USER,
            [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": GATEWAY_USER}],
        ),
    ]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": "10.96.0.1",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }
    return [*namespaces, *roles, *bindings, service]
