"""Builders for policy tests: rules from plain dicts, identities and requests as the gateway makes them."""

from __future__ import annotations

from typing import Any

from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo, parse_request_info
from kubegate.policy.engine import PolicyEngine
from kubegate.policy.model import PolicyRule

GITHUB = "https://token.actions.githubusercontent.com"


def rule(name: str, action: str = "allow", **fields: Any) -> PolicyRule:
    if action == "review":
        fields.setdefault("reviewers", {"groups": ["oncall"]})
    return PolicyRule.model_validate({"name": name, "action": action, **fields})


def engine(*rules: PolicyRule) -> PolicyEngine:
    return PolicyEngine.from_rules(rules)


def who(
    username: str = "alice",
    groups: tuple[str, ...] = (),
    issuer: str = "https://issuer.example",
    subject: str | None = None,
    **claims: str,
) -> Identity:
    return Identity(issuer=issuer, subject=subject or username, username=username, groups=groups, claims=claims)


def req(method: str, path: str, query: str = "") -> RequestInfo:
    return parse_request_info(method, path, query)
