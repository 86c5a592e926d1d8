"""RBAC evaluated as kube-apiserver's RBAC authorizer does, over the Roles and bindings in the store.

One evaluator answers every request, impersonation checks and SelfSubjectAccessReviews alike, so what
`kubectl auth can-i` says is what the next request meets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, forbidden
from .store import Store

MASTERS = "system:masters"
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES, CLUSTER_ROLES = f"{RBAC_GROUP}/roles", f"{RBAC_GROUP}/clusterroles"
BINDINGS, CLUSTER_BINDINGS = f"{RBAC_GROUP}/rolebindings", f"{RBAC_GROUP}/clusterrolebindings"


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Attributes:
    """authorizer.Attributes: what is asked, by whom."""

    user: User
    verb: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _has(values: list[str] | None, wanted: str, wildcard: str = "*") -> bool:
    return bool(values) and (wildcard in values or wanted in values)  # type: ignore[operator]


def rule_allows(a: Attributes, rule: dict[str, Any]) -> bool:
    if not _has(rule.get("verbs"), a.verb):
        return False
    if not a.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url in ("*", a.path) or (url.endswith("*") and a.path.startswith(url.rstrip("*"))):
                return True
        return False
    if not _has(rule.get("apiGroups"), a.api_group):
        return False
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    resources = rule.get("resources") or []
    if not ("*" in resources or combined in resources or (a.subresource and f"*/{a.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return bool(ns) and user.name == f"system:serviceaccount:{ns}:{name}"
    return False


def _describe_subject(subject: dict[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return f'ServiceAccount "{subject.get("name")}/{ns}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def forbidden_message(a: Attributes) -> str:
    """responsewriters.forbiddenMessage."""
    if not a.resource_request:
        return f'User "{a.user.name}" cannot {a.verb} path "{a.path}"'
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'User "{a.user.name}" cannot {a.verb} resource "{resource}" in API group "{a.api_group}" {where}'


def forbidden_error(a: Attributes, reason: str = "") -> ApiError:
    """responsewriters.Forbidden: the Status kube-apiserver sends when authorization says no."""
    why = forbidden_message(a) + (f": {reason}" if reason else "")
    return forbidden(a.api_group if a.resource_request else "", a.resource, a.name, why)


class Authorizer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _role_rules(self, ref: dict[str, Any], namespace: str) -> tuple[list[dict[str, Any]], str]:
        """Rules of a binding's roleRef, or an error text as RBAC's rule resolver reports it."""
        name = ref.get("name", "")
        if ref.get("kind") == "ClusterRole":
            role = self.store.get(CLUSTER_ROLES, "", name)
            missing = f'clusterrole.{RBAC_GROUP} "{name}" not found'
        else:
            role = self.store.get(ROLES, namespace, name)
            missing = f'role.{RBAC_GROUP} "{name}" not found'
        if role is None:
            return [], missing
        return list(role.get("rules") or []), ""

    def grants(self, user: User, namespace: str) -> Iterator[tuple[str, list[dict[str, Any]], str]]:
        """(source description, rules, error) for every binding that names `user`."""
        for binding in self.store.list(CLUSTER_BINDINGS):
            for subject in binding.get("subjects") or []:
                if subject_matches(subject, user, ""):
                    ref = binding.get("roleRef", {})
                    rules, err = self._role_rules(ref, "")
                    source = (
                        f'ClusterRoleBinding "{binding["metadata"]["name"]}" of {ref.get("kind")} '
                        f'"{ref.get("name")}" to {_describe_subject(subject, "")}'
                    )
                    yield source, rules, err
                    break
        if not namespace:
            return
        for binding in self.store.list(BINDINGS, namespace):
            for subject in binding.get("subjects") or []:
                if subject_matches(subject, user, namespace):
                    ref = binding.get("roleRef", {})
                    rules, err = self._role_rules(ref, namespace)
                    source = (
                        f'RoleBinding "{binding["metadata"]["name"]}/{namespace}" of {ref.get("kind")} '
                        f'"{ref.get("name")}" to {_describe_subject(subject, namespace)}'
                    )
                    yield source, rules, err
                    break

    def authorize(self, a: Attributes) -> Decision:
        if MASTERS in a.user.groups:
            return Decision(True)
        errors: list[str] = []
        namespace = a.namespace if a.resource_request else ""
        for source, rules, err in self.grants(a.user, namespace):
            if err:
                errors.append(err)
            if any(rule_allows(a, rule) for rule in rules):
                return Decision(True, f"RBAC: allowed by {source}")
        if not errors:
            return Decision(False)
        joined = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return Decision(False, f"RBAC: {joined}")

    def require(self, a: Attributes) -> None:
        decision = self.authorize(a)
        if not decision.allowed:
            raise forbidden_error(a, decision.reason)

    def covers(self, user: User, namespace: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rules `user` does not already hold in `namespace` (RBAC's escalation check)."""
        missing: list[dict[str, Any]] = []
        for rule in rules:
            for attrs in _expand(user, namespace, rule):
                if not self.authorize(attrs).allowed:
                    missing.append(rule)
                    break
        return missing


def _expand(user: User, namespace: str, rule: dict[str, Any]) -> Iterator[Attributes]:
    for verb in rule.get("verbs") or []:
        for url in rule.get("nonResourceURLs") or []:
            yield Attributes(user, verb, False, path=url)
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                res, _, sub = resource.partition("/")
                for name in rule.get("resourceNames") or [""]:
                    yield Attributes(
                        user, verb, True, api_group=group, namespace=namespace, resource=res, subresource=sub, name=name
                    )
