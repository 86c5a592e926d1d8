"""A PolicyRule compiled into an ordered list of checks over one request's facts.

Checks run cheapest first and stop at the first that fails; only a rule that matches pays for its
explanation. The CEL condition, the only expensive check, always runs last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo
from kubegate.policy import cel
from kubegate.policy.decision import ReviewerSpec
from kubegate.policy.model import PolicyRule
from kubegate.policy.patterns import ArgvMatcher, GlobSet


@dataclass(slots=True)
class Facts:
    """One request as the rules see it, with the CEL activation built only if a condition needs it."""

    identity: Identity
    info: RequestInfo
    connection: str
    obj: Any = None
    name: str = ""
    _activation: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, identity: Identity, info: RequestInfo, connection: str, obj: Any = None) -> Facts:
        return cls(identity, info, connection, obj, effective_name(info, obj))

    def activation(self) -> Any:
        if self._activation is None:
            request = self.info.as_dict()
            request.update(connection=self.connection, name=self.name, resource_path=self.info.resource_path)
            self._activation = cel.activation(
                {"identity": self.identity.as_dict(), "request": request, "object": self.obj}
            )
        return self._activation


def effective_name(info: RequestInfo, obj: Any) -> str:
    """The object's name; for a create (whose path has none) the name in the body, so that a rule on
    `names: [aws-auth]` also covers creating aws-auth."""
    if info.name or info.verb != "create" or info.subresource or not isinstance(obj, dict):
        return info.name
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


def _show(patterns: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(repr(p) for p in patterns) + "]"


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of a rule: a fast test, and the sentences explain prints either way.

    `reads_object` says, for a request, whether the test depends on the object the request writes
    (a CEL condition on `object`, or `names` on a create whose name is in the body)."""

    test: Callable[[Facts], bool]
    why: Callable[[Facts], str]
    why_not: Callable[[Facts], str]
    reads_object: Callable[[Facts], bool] = lambda f: False


def _claim(name: str) -> Callable[[Facts], str]:
    return lambda f: str(f.identity.claims.get(name, ""))


def _glob_check(label: str, patterns: list[str], value: Callable[[Facts], str], empty_is_literal: bool = True) -> Check:
    globs = GlobSet.compile(patterns, empty_is_literal)

    def why(f: Facts) -> str:
        v = value(f)
        return f"{label} {v!r} matches {globs.which(v)!r}"

    return Check(
        lambda f: globs.matches(value(f)), why, lambda f: f"{label} {value(f)!r} is not in {_show(globs.patterns)}"
    )


def _resource_check(resources: list[str], subresources: list[str]) -> Check:
    """RBAC-style: 'pods' is the pod itself, 'pods/exec' a subresource, 'pods/*' all, '*' everything."""
    pairs: list[tuple[str, str | None]] = []
    for entry in resources or ["*"]:
        res, slash, sub = entry.partition("/")
        if slash:
            pairs.append((res, sub))
        elif subresources:
            pairs.extend((res, s) for s in subresources)
        else:
            pairs.append((res, None if res == "*" else ""))
    compiled = [(GlobSet.compile([r]), None if s is None else GlobSet.compile([s])) for r, s in pairs]

    def find(f: Facts) -> tuple[str, str | None] | None:
        for (r, s), (rg, sg) in zip(pairs, compiled, strict=True):
            if rg.matches(f.info.resource) and (sg is None or sg.matches(f.info.subresource)):
                return r, s
        return None

    def why(f: Facts) -> str:
        r, s = find(f) or ("?", "?")
        pattern = r if s is None else (f"{r}/{s}" if s else r)
        return f"resource {f.info.resource_path!r} matches {pattern!r}"

    shown = [r if s is None else (f"{r}/{s}" if s else r) for r, s in pairs]
    return Check(
        lambda f: find(f) is not None, why, lambda f: f"resource {f.info.resource_path!r} is not in {_show(shown)}"
    )


def _exec_check(matchers: list[ArgvMatcher]) -> Check:
    def find(f: Facts) -> ArgvMatcher | None:
        if f.info.subresource != "exec":
            return None
        return next((m for m in matchers if m.matches(f.info.command)), None)

    def why(f: Facts) -> str:
        m = find(f)
        return f"exec command {list(f.info.command)!r} matches {m.source if m else '?'}"

    def why_not(f: Facts) -> str:
        if f.info.subresource != "exec":
            return "the rule is about exec commands and this request is not an exec"
        return f"exec command {list(f.info.command)!r} matches none of " + "; ".join(m.source for m in matchers)

    return Check(lambda f: find(f) is not None, why, why_not)


def _subject_checks(rule: PolicyRule) -> list[Check]:
    s = rule.subjects
    checks: list[Check] = []
    if s.users:
        users = GlobSet.compile(s.users)

        # The Kubernetes user name only: it is issuer-qualified, a bare subject is not (policy/subjects.py).
        checks.append(
            Check(
                lambda f: users.matches(f.identity.username),
                lambda f: f"user {f.identity.username!r} matches {users.which(f.identity.username)!r}",
                lambda f: f"user {f.identity.username!r} is not in {_show(s.users)}",
            )
        )
    if s.groups:
        groups = GlobSet.compile(s.groups)

        def group_why(f: Facts) -> str:
            g = next(g for g in f.identity.groups if groups.matches(g))
            return f"group {g!r} matches {groups.which(g)!r}"

        checks.append(
            Check(
                lambda f: groups.any_matches(f.identity.groups),
                group_why,
                lambda f: f"groups {list(f.identity.groups)!r} have none of {_show(s.groups)}",
            )
        )
    if s.issuers:
        checks.append(_glob_check("issuer", s.issuers, lambda f: f.identity.issuer))
    for claim, patterns in s.claims.items():
        checks.append(_glob_check(f"claim {claim}", patterns, _claim(claim)))
    return checks


def _condition_check(rule: PolicyRule) -> Check:
    assert rule.condition is not None
    program = cel.parse_condition(rule.condition)
    fail_closed_matches = rule.action != "allow"
    text = " ".join(rule.condition.split())

    def run(f: Facts) -> bool | str:
        try:
            return cel.evaluate(program, f.activation())
        except cel.CelEvalError as exc:
            return str(exc)

    def test(f: Facts) -> bool:
        result = run(f)
        return fail_closed_matches if isinstance(result, str) else result

    def why(f: Facts) -> str:
        result = run(f)
        if isinstance(result, str):
            return f"condition could not be evaluated ({result}); a {rule.action} rule then matches (fail closed)"
        return f"condition is true: {text}"

    def why_not(f: Facts) -> str:
        result = run(f)
        if isinstance(result, str):
            return f"condition could not be evaluated ({result}); an allow rule then does not match (fail closed)"
        return f"condition is false: {text}"

    reads = "object" in cel.identifiers(rule.condition)
    return Check(test, why, why_not, (lambda f: True) if reads else (lambda f: False))


def name_in_body(info: RequestInfo) -> bool:
    """A create names its object in the body, not the path (see effective_name)."""
    return info.verb == "create" and not info.name and not info.subresource


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to test: its checks in order."""

    position: int
    rule: PolicyRule
    source: str
    checks: tuple[Check, ...]
    reviewers: ReviewerSpec | None

    @property
    def name(self) -> str:
        return self.rule.name

    def matches(self, facts: Facts) -> bool:
        return all(check.test(facts) for check in self.checks)

    def matches_but_object(self, facts: Facts) -> bool | None:
        """Whether the rule matches on everything but the request's object: False if some other check
        fails, None if only checks that read the object remain (their verdict needs it), else True."""
        pending = False
        for check in self.checks:
            if check.reads_object(facts):
                pending = True
            elif not check.test(facts):
                return False
        return None if pending else True

    def why(self, facts: Facts) -> list[str]:
        reasons = [text for text in (c.why(facts) for c in self.checks) if text]
        return reasons or ["the rule has no conditions: it matches every request"]

    def why_not(self, facts: Facts) -> str:
        return next(c.why_not(facts) for c in self.checks if not c.test(facts))


def compile_rule(rule: PolicyRule, position: int = 0, source: str = "") -> CompiledRule:
    m = rule.match
    checks: list[Check] = []
    verbs = [v for v in m.verbs if v != "*"] if "*" not in m.verbs else []
    if verbs:
        verb_set = frozenset(verbs)
        checks.append(
            Check(
                lambda f: f.info.verb in verb_set,
                lambda f: f"verb {f.info.verb!r} is in {_show(verbs)}",
                lambda f: f"verb {f.info.verb!r} is not in {_show(verbs)}",
            )
        )
    resource_fields = bool(m.api_groups or m.resources or m.subresources or m.namespaces or m.names or m.exec)
    if m.non_resource_urls:
        checks.append(
            Check(
                lambda f: not f.info.is_resource_request,
                lambda f: "",
                lambda f: "the rule is about non-resource URLs and this is a resource request",
            )
        )
        checks.append(_glob_check("path", m.non_resource_urls, lambda f: f.info.path))
    elif resource_fields:
        checks.append(
            Check(
                lambda f: f.info.is_resource_request,
                lambda f: "",
                lambda f: f"the rule is about resources and {f.info.path!r} is a non-resource URL",
            )
        )
    if m.resources or m.subresources:
        checks.append(_resource_check(m.resources, m.subresources))
    if m.namespaces:
        checks.append(_glob_check("namespace", m.namespaces, lambda f: f.info.namespace))
    if m.api_groups:
        checks.append(_glob_check("API group", m.api_groups, lambda f: f.info.api_group, empty_is_literal=False))
    if m.names:
        names = _glob_check("name", m.names, lambda f: f.name)
        checks.append(Check(names.test, names.why, names.why_not, lambda f: name_in_body(f.info)))
    if m.exec:
        checks.append(_exec_check([ArgvMatcher.compile(e) for e in m.exec]))
    if rule.connections:
        checks.append(_glob_check("connection", rule.connections, lambda f: f.connection))
    checks.extend(_subject_checks(rule))
    if rule.condition is not None:
        checks.append(_condition_check(rule))
    reviewers = None
    if rule.reviewers is not None:
        r = rule.reviewers
        reviewers = ReviewerSpec(tuple(r.groups), tuple(r.users), r.min_approvals, r.mode, r.timeout)
    return CompiledRule(position, rule, source, tuple(checks), reviewers)
