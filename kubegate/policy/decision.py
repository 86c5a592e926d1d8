"""The outcome of deciding one request: what happens, which rules said so, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["allow", "deny", "review"]
RoleScope = Literal["namespace", "cluster"]


@dataclass(frozen=True, slots=True)
class ReviewerSpec:
    """Who may approve and how kubectl waits. Combined over review rules: reviewers are pooled,
    the highest `min_approvals` and the shortest `timeout` (seconds) win; `mode` is the first
    rule's. Each RuleMatch also carries its own rule's spec for approvals that check rule by rule.
    """

    groups: tuple[str, ...]
    users: tuple[str, ...]
    min_approvals: int
    mode: Literal["wait", "async"]
    timeout: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "groups": list(self.groups),
            "users": list(self.users),
            "min_approvals": self.min_approvals,
            "mode": self.mode,
            "timeout": self.timeout,
        }

    @staticmethod
    def combine(specs: list[ReviewerSpec]) -> ReviewerSpec | None:
        if not specs:
            return None
        return ReviewerSpec(
            groups=tuple(sorted({g for s in specs for g in s.groups})),
            users=tuple(sorted({u for s in specs for u in s.users})),
            min_approvals=max(s.min_approvals for s in specs),
            mode=specs[0].mode,
            timeout=min(s.timeout for s in specs),
        )


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that matched, with one human-readable reason per condition it checked."""

    rule: str
    action: str
    why: list[str]
    source: str = ""
    reviewers: ReviewerSpec | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "action": self.action, "why": list(self.why), "source": self.source}
        if self.reviewers is not None:
            out["reviewers"] = self.reviewers.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class RuleMiss:
    """A rule that did not match and the first condition that failed (explain only)."""

    rule: str
    action: str
    why_not: str
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "action": self.action, "why_not": self.why_not, "source": self.source}


@dataclass(frozen=True, slots=True)
class Decision:
    """deny beats review beats allow; no matching rule is a deny. Masks add up over all matches.

    `role`/`role_scope` come from the first matching allow rule with a role whose scope fits the
    request (a namespace-scoped role cannot serve a cluster-wide request), else from review rules.
    `misses` is filled only by PolicyEngine.explain.
    """

    action: Action
    matches: tuple[RuleMatch, ...]
    message: str
    masks: tuple[str, ...] = ()
    role: str | None = None
    role_scope: RoleScope | None = None
    reviewers: ReviewerSpec | None = None
    misses: tuple[RuleMiss, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    @property
    def deciding_rules(self) -> tuple[str, ...]:
        """The rules whose action is the decision's (empty for a default deny)."""
        return tuple(m.rule for m in self.matches if m.action == self.action)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action": self.action,
            "message": self.message,
            "matches": [m.as_dict() for m in self.matches],
            "masks": list(self.masks),
            "role": self.role,
            "role_scope": self.role_scope,
            "reviewers": self.reviewers.as_dict() if self.reviewers else None,
        }
        if self.misses:
            out["misses"] = [m.as_dict() for m in self.misses]
        return out
