"""Access requests, votes and grants as values, and the rules that bind them: who may review, when
enough reviewers said yes, which later request an approval covers."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo
from kubegate.policy.decision import RuleMatch

ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
"""No 0/o, 1/l/i: an id is read aloud and typed by hand."""
ID_LENGTH = 8
STATES = ("pending", "approved", "denied", "expired", "revoked")


def new_request_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def fingerprint(
    username: str, connection: str, info: RequestInfo, method: str, raw_path: str, query: str, body_sha256: str
) -> str:
    """What an approval is bound to: who, where, and the exact request, body included.

    The method is taken as kube-apiserver authorizes it (the verb), so kubectl's WebSocket exec
    (GET) and its SPDY fallback (POST) are one request, as they are one `create pods/exec`. The path
    and query are compared raw: repeated `command=` parameters keep their order.
    """
    verb = info.verb if info.is_resource_request else method.upper()
    parts = [username, connection, verb, raw_path, query, body_sha256]
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()


def isotime(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RuleReviewers:
    """One review rule's demand: `min_approvals` yeses from its own groups or users."""

    rule: str
    groups: tuple[str, ...]
    users: tuple[str, ...]
    min_approvals: int = 1

    @classmethod
    def from_match(cls, match: RuleMatch) -> RuleReviewers:
        spec = match.reviewers
        assert spec is not None
        return cls(match.rule, spec.groups, spec.users, spec.min_approvals)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleReviewers:
        return cls(
            str(data["rule"]),
            tuple(data.get("groups", ())),
            tuple(data.get("users", ())),
            int(data.get("min_approvals", 1)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "groups": list(self.groups),
            "users": list(self.users),
            "min_approvals": self.min_approvals,
        }

    def admits(self, username: str, groups: Sequence[str]) -> bool:
        """Exact names only: a reviewer list is a list of people, never a pattern. The user name, never the
        bare subject: only the user name says which issuer vouched for it."""
        return bool(set(groups) & set(self.groups)) or username in self.users


def merge_rules(rules: Sequence[RuleReviewers]) -> tuple[RuleReviewers, ...]:
    """One demand per rule name (a scope can meet the same rule through several resources)."""
    out: dict[str, RuleReviewers] = {}
    for r in rules:
        prev = out.get(r.rule)
        out[r.rule] = (
            r
            if prev is None
            else RuleReviewers(
                r.rule,
                tuple(sorted({*prev.groups, *r.groups})),
                tuple(sorted({*prev.users, *r.users})),
                max(prev.min_approvals, r.min_approvals),
            )
        )
    return tuple(out.values())


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """`pods`, `pods/log`, `deployments.apps`, `deployments.apps/scale`: kubectl's RESOURCE.GROUP form."""

    resource: str
    group: str = ""
    subresource: str = ""

    @classmethod
    def parse(cls, text: str) -> ResourceRef:
        main, slash, sub = text.strip().partition("/")
        resource, dot, group = main.partition(".")
        if not resource or "/" in sub or (slash and not sub) or (dot and not group):
            raise ValueError(f"{text!r} is not RESOURCE[.GROUP][/SUBRESOURCE], for example pods or pods/log")
        return cls(resource, group, sub)

    def __str__(self) -> str:
        main = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{main}/{self.subresource}" if self.subresource else main

    def covers(self, info: RequestInfo) -> bool:
        return (info.resource, info.api_group, info.subresource) == (self.resource, self.group, self.subresource)


@dataclass(frozen=True, slots=True)
class Scope:
    """Time-boxed access asked for ahead of time: these verbs on these resources in one namespace."""

    namespace: str
    verbs: tuple[str, ...]
    resources: tuple[ResourceRef, ...]
    duration: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scope:
        return cls(
            str(data.get("namespace", "")),
            tuple(data["verbs"]),
            tuple(ResourceRef.parse(r) for r in data["resources"]),
            float(data["duration"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "verbs": list(self.verbs),
            "resources": [str(r) for r in self.resources],
            "duration": self.duration,
        }

    def covers(self, info: RequestInfo) -> bool:
        return (
            info.is_resource_request
            and info.namespace == self.namespace
            and info.verb in self.verbs
            and any(r.covers(info) for r in self.resources)
        )

    def describe(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "cluster-wide"
        return (
            f"{','.join(self.verbs)} on {','.join(str(r) for r in self.resources)} in {where} "
            f"for {_human(self.duration)}"
        )


def _human(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Vote:
    reviewer: str
    subject: str
    groups: tuple[str, ...]
    comment: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"reviewer": self.reviewer, "groups": list(self.groups), "comment": self.comment, "at": isotime(self.at)}


def missing_approvals(rules: Sequence[RuleReviewers], votes: Sequence[Vote]) -> list[str]:
    """For each rule still short of yeses: 'rule R needs N more from G'. Empty: approved."""
    out = []
    for rule in rules:
        got = sum(1 for v in votes if rule.admits(v.reviewer, v.groups))
        if got < rule.min_approvals:
            who = ", ".join([*rule.groups, *rule.users])
            out.append(f"rule {rule.rule} needs {rule.min_approvals - got} more approval(s) from {who}")
    return out


@dataclass(frozen=True, slots=True)
class Grant:
    request_id: str
    kind: str
    username: str
    connection: str
    fingerprint: str | None
    scope: Scope | None
    rules: tuple[str, ...]
    created_at: float
    expires_at: float
    max_uses: int | None
    uses: int
    last_used_at: float | None
    revoked_at: float | None
    revoked_by: str
    revoke_reason: str

    @classmethod
    def from_row(cls, row: Any) -> Grant:
        return cls(
            row.request_id,
            row.kind,
            row.username,
            row.connection,
            row.fingerprint,
            Scope.from_dict(row.scope) if row.scope else None,
            tuple(row.rules),
            row.created_at,
            row.expires_at,
            row.max_uses,
            row.uses,
            row.last_used_at,
            row.revoked_at,
            row.revoked_by,
            row.revoke_reason,
        )

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used"
        return "expired" if now >= self.expires_at else "active"

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "state": self.state(now),
            "expires_at": isotime(self.expires_at),
            "uses": self.uses,
            "max_uses": self.max_uses,
            "last_used_at": isotime(self.last_used_at),
            "revoked_at": isotime(self.revoked_at),
            "revoked_by": self.revoked_by,
            "revoke_reason": self.revoke_reason,
        }


@dataclass(frozen=True, slots=True)
class AccessRequest:
    id: str
    kind: str
    state: str
    fingerprint: str | None
    username: str
    subject: str
    issuer: str
    groups: tuple[str, ...]
    claims: Mapping[str, str]
    connection: str
    method: str
    path: str
    query: str
    info: Mapping[str, Any] | None
    content_type: str
    body_sha256: str
    body_bytes: int
    kubectl_command: str
    summary: str
    scope: Scope | None
    reason: str
    rules: tuple[RuleReviewers, ...]
    mode: str
    session_id: str | None
    server: str
    created_at: float
    expires_at: float
    decided_at: float | None
    decided_by: str
    decision_reason: str
    votes: tuple[Vote, ...] = ()
    grant: Grant | None = None

    @classmethod
    def from_row(cls, row: Any, votes: Sequence[Vote] = (), grant: Grant | None = None) -> AccessRequest:
        return cls(
            row.id,
            row.kind,
            row.state,
            row.fingerprint,
            row.username,
            row.subject,
            row.issuer,
            tuple(row.groups),
            dict(row.claims),
            row.connection,
            row.method,
            row.path,
            row.query,
            row.info,
            row.content_type,
            row.body_sha256,
            row.body_bytes,
            row.kubectl_command,
            row.summary,
            Scope.from_dict(row.scope) if row.scope else None,
            row.reason,
            tuple(RuleReviewers.from_dict(r) for r in row.rules),
            row.mode,
            row.session_id,
            row.server,
            row.created_at,
            row.expires_at,
            row.decided_at,
            row.decided_by,
            row.decision_reason,
            tuple(votes),
            grant,
        )

    def effective_state(self, now: float) -> str:
        return "expired" if self.state == "pending" and now >= self.expires_at else self.state

    def requested_by(self, identity: Identity) -> bool:
        """Nobody approves their own request: the same user name, or the same subject at the same issuer."""
        return identity.username == self.username or (identity.issuer, identity.subject) == (self.issuer, self.subject)

    def reviewable_by(self, identity: Identity) -> bool:
        return not self.requested_by(identity) and any(r.admits(identity.username, identity.groups) for r in self.rules)

    @property
    def reviewers(self) -> dict[str, list[str]]:
        return {
            "groups": sorted({g for r in self.rules for g in r.groups}),
            "users": sorted({u for r in self.rules for u in r.users}),
        }

    def describe(self) -> str:
        """One line a reviewer reads: who wants to do what, where."""
        if self.scope is not None:
            return f"{self.username} asks for {self.scope.describe()} on connection {self.connection}"
        info = self.info or {}
        if not info.get("is_resource_request"):
            return f"{self.username} asks to {self.method} {self.path} on connection {self.connection}"
        target = "/".join(p for p in (info.get("resource"), info.get("subresource")) if p)
        name = f" {info['name']}" if info.get("name") else ""
        where = (
            f" in namespace {info['namespace']}"
            if info.get("namespace") and info.get("resource") != "namespaces"
            else ""
        )
        command = f": {' '.join(info['command'])}" if info.get("command") else ""
        return (
            f"{self.username} asks to {info.get('verb')} {target}{name}{where}{command} on connection {self.connection}"
        )

    def approve_command(self, server: str | None = None) -> str:
        return f"kubegate requests approve {self.id} --server {server or self.server}"

    def as_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.effective_state(now),
            "description": self.describe(),
            "requester": {
                "username": self.username,
                "subject": self.subject,
                "issuer": self.issuer,
                "groups": list(self.groups),
                "claims": dict(self.claims),
            },
            "connection": self.connection,
            "request": None
            if self.kind == "scope"
            else {
                "method": self.method,
                "path": self.path,
                "query": self.query,
                "info": self.info,
                "content_type": self.content_type,
                "body_sha256": self.body_sha256,
                "body_bytes": self.body_bytes,
                "kubectl_command": self.kubectl_command,
                "fingerprint": self.fingerprint,
            },
            "scope": self.scope.as_dict() if self.scope else None,
            "summary": self.summary,
            "reason": self.reason,
            "mode": self.mode,
            "rules": [r.as_dict() for r in self.rules],
            "reviewers": self.reviewers,
            "approvals": [v.as_dict() for v in self.votes],
            "missing": missing_approvals(self.rules, self.votes) if self.state == "pending" else [],
            "session_id": self.session_id,
            "created_at": isotime(self.created_at),
            "expires_at": isotime(self.expires_at),
            "decided_at": isotime(self.decided_at),
            "decided_by": self.decided_by,
            "decision_reason": self.decision_reason,
            "grant": self.grant.as_dict(now) if self.grant else None,
            "approve_command": self.approve_command(),
        }


@dataclass(slots=True)
class NewRequest:
    """What the stage or the API knows when it asks; the repository turns it into a row."""

    kind: str
    identity: Identity
    connection: str
    rules: tuple[RuleReviewers, ...]
    mode: str
    expires_in: float
    fingerprint: str | None = None
    method: str = ""
    path: str = ""
    query: str = ""
    info: dict[str, Any] | None = None
    content_type: str = ""
    body_sha256: str = ""
    body_bytes: int = 0
    kubectl_command: str = ""
    summary: str = ""
    scope: Scope | None = None
    reason: str = ""
    session_id: str | None = None
    server: str = ""
