"""The create-only review kinds and service account tokens: SelfSubjectAccessReview (`kubectl auth
can-i`), SelfSubjectReview (`kubectl auth whoami`) and TokenRequest (`kubectl create token`)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from .authn import Tokens
from .errors import bad_request
from .rbac import Attributes, Authorizer, User


def access_review(authz: Authorizer, user: User, body: dict[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if res:
        attrs = Attributes(
            user,
            res.get("verb", ""),
            True,
            res.get("group", ""),
            res.get("version", ""),
            res.get("namespace", ""),
            res.get("resource", ""),
            res.get("subresource", ""),
            res.get("name", ""),
        )
    elif nonres:
        attrs = Attributes(user, nonres.get("verb", ""), False, path=nonres.get("path", ""))
    else:
        raise bad_request(
            'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
            'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes '
            "must be specified"
        )
    decision = authz.authorize(attrs)
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def rules_review(authz: Authorizer, user: User, body: dict[str, Any]) -> dict[str, Any]:
    """What `user` may do in a namespace (`kubectl auth can-i --list`), from the same bindings RBAC reads."""
    spec = body.get("spec") or {}
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    errors: list[str] = []
    for _, rules, err in authz.grants(user, spec.get("namespace", "")):
        if err:
            errors.append(err)
        for rule in rules:
            if rule.get("nonResourceURLs"):
                non_resource_rules.append({"verbs": rule.get("verbs", []), "nonResourceURLs": rule["nonResourceURLs"]})
            else:
                resource_rules.append(
                    {
                        k: rule[k]
                        for k in ("verbs", "apiGroups", "resources", "resourceNames")
                        if rule.get(k) or k == "verbs"
                    }
                )
    status: dict[str, Any] = {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": bool(errors),
    }
    if errors:
        status["evaluationError"] = ", ".join(errors)
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def self_review(user: User) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {k: list(v) for k, v in user.extra.items()}
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": info},
    }


def token_request(tokens: Tokens, account: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Mint a bearer token for a service account; the sandbox accepts it like any other token."""
    meta = account["metadata"]
    spec = dict(body.get("spec") or {})
    seconds = int(spec.get("expirationSeconds") or 3600)
    spec["expirationSeconds"] = seconds
    spec.setdefault("audiences", ["https://kubernetes.default.svc.cluster.local"])
    token = secrets.token_urlsafe(32)
    ns = meta["namespace"]
    tokens.add(
        token, f"system:serviceaccount:{ns}:{meta['name']}", ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": meta["name"], "namespace": ns, "creationTimestamp": None},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
