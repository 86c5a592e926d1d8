"""Decide requests against the loaded rules, and reload them when their files change.

What a rule sees is kube-apiserver's RequestInfo, so a rule cannot be side-stepped by how a request
is spelled: exec/attach/portforward are `create` on their subresource, legacy /watch/ paths are
`watch`, `deletecollection` is not `delete`, and a cluster-wide request has namespace "" which no
namespace glob matches (`namespaces: ["pr-*"]` does not match `GET /api/v1/secrets`).

The namespace object itself: kube-apiserver gives `/api/v1/namespaces/pr-1` (get, update, patch,
delete, and its status/finalize) namespace "pr-1", as a RoleBinding in pr-1 would see it, so
`namespaces: ["pr-*"]` matches those. Creating a namespace is `POST /api/v1/namespaces`: a
cluster-scoped request with namespace "", and it does NOT match `namespaces: ["pr-*"]`. This is on
purpose: the namespace does not exist yet, so no namespace-scoped role could serve the request, and
a rule about "what happens inside pr-*" should not silently grant making namespaces. To let an agent
create its own namespaces, write a rule with `namespaces: [""]`, `resources: [namespaces]`,
`verbs: [create]` and `names: ["pr-*"]` (for a create, `names` matches the name in the body).

Rules are compiled once per load and indexed by verb/resource, namespace and subject, so a decision
tests only the rules that could apply; a rule's CEL condition runs only when everything else matched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubegate.configbase import ConfigError
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo
from kubegate.policy.cel import identifiers
from kubegate.policy.decision import Decision, ReviewerSpec, RoleScope, RuleMatch, RuleMiss
from kubegate.policy.index import RuleIndex, positions
from kubegate.policy.loader import SourcedRule, fingerprint, load_rules, policy_files
from kubegate.policy.model import PolicyRule
from kubegate.policy.rules import CompiledRule, Facts, compile_rule

log = logging.getLogger("kubegate.policy")


@dataclass(frozen=True, slots=True)
class RuleSet:
    """One load's rules, compiled and indexed; replaced whole on reload so a decision never sees half."""

    rules: tuple[CompiledRule, ...]
    index: RuleIndex
    needs_object: bool

    @classmethod
    def build(cls, sourced: Sequence[SourcedRule]) -> RuleSet:
        rules = tuple(compile_rule(sr.rule, i, sr.source) for i, sr in enumerate(sourced))
        # A body is needed for conditions that read `object` and for `names` on a create (name in the body).
        needs_object = any(
            (sr.rule.condition and "object" in identifiers(sr.rule.condition)) or sr.rule.match.names for sr in sourced
        )
        return cls(rules, RuleIndex.build([sr.rule for sr in sourced]), needs_object)

    def candidates(self, identity: Identity, info: RequestInfo) -> list[CompiledRule]:
        """Rules that could match, in load order."""
        return [self.rules[p] for p in positions(self.index.candidates(identity, info))]


@dataclass(frozen=True, slots=True)
class PolicySources:
    """What kubegate.yaml gives a policy: its own rules and policy_dirs, each issuer's username prefix
    (every policy user must name one) and the masks the masking config defines."""

    rules: tuple[PolicyRule, ...] = ()
    dirs: tuple[Path, ...] = ()
    user_prefixes: tuple[str, ...] = ()
    known_masks: frozenset[str] | None = None


def _describe_request(identity: Identity, info: RequestInfo, connection: str, name: str) -> str:
    if not info.is_resource_request:
        return f"{identity.username!r} to {info.verb} {info.path} on connection {connection!r}"
    group = f" (API group {info.api_group})" if info.api_group else ""
    target = f"{info.resource_path} {name!r}" if name else info.resource_path
    where = f"in namespace {info.namespace!r}" if info.namespace else "cluster-wide (no namespace)"
    return f"{identity.username!r} to {info.verb} {target}{group} {where} on connection {connection!r}"


def _choose_role(matches: Sequence[CompiledRule], namespaced: bool) -> tuple[str | None, RoleScope | None]:
    with_role = [r.rule for r in matches if r.rule.role]
    fitting = [r for r in with_role if namespaced or r.scope == "cluster"] or with_role
    return (fitting[0].role, fitting[0].scope) if fitting else (None, None)


def build_decision(facts: Facts, matched: Sequence[CompiledRule]) -> Decision:
    """deny > review > allow > (nothing matched) deny; masks from every match."""
    matches = tuple(RuleMatch(r.name, r.rule.action, r.why(facts), r.source, r.reviewers) for r in matched)
    masks = tuple(sorted({m for r in matched for m in r.rule.mask}))
    by_action: dict[str, list[CompiledRule]] = {"allow": [], "deny": [], "review": []}
    for r in matched:
        by_action[r.rule.action].append(r)
    info = facts.info
    if by_action["deny"]:
        first, others = by_action["deny"][0], by_action["deny"][1:]
        message = (
            f"kubegate denied this request by rule {first.name}: "
            f"{first.rule.message or 'this request is not permitted'}"
        )
        if others:
            message += f" (also denied by {', '.join(r.name for r in others)})"
        return Decision("deny", matches, message, masks)
    if by_action["review"]:
        reviewers = ReviewerSpec.combine([r.reviewers for r in by_action["review"] if r.reviewers])
        role, scope = _choose_role(by_action["allow"] or by_action["review"], bool(info.namespace))
        first = by_action["review"][0]
        message = f"kubegate holds this request for approval by rule {first.name}" + (
            f": {first.rule.message}" if first.rule.message else ""
        )
        return Decision("review", matches, message, masks, role, scope, reviewers)
    if by_action["allow"]:
        role, scope = _choose_role(by_action["allow"], bool(info.namespace))
        return Decision("allow", matches, f"allowed by rule {by_action['allow'][0].name}", masks, role, scope)
    message = (
        "kubegate denied this request: no policy rule allows "
        f"{_describe_request(facts.identity, info, facts.connection, facts.name)}. "
        "Ask a kubegate administrator to add a rule for it; `kubegate policy explain` shows which rules "
        "were considered and why none matched"
    )
    return Decision("deny", (), message, masks)


class PolicyEngine:
    """Holds the current RuleSet; decide() is synchronous and lock-free (the RuleSet is immutable)."""

    def __init__(
        self,
        config_rules: Sequence[PolicyRule] = (),
        policy_dirs: Sequence[Path] = (),
        files: Sequence[Path] = (),
        config_path: Path | None = None,
        user_prefixes: Sequence[str] = (),
        known_masks: frozenset[str] | None = None,
        read_config: Callable[[Path], PolicySources] | None = None,
    ) -> None:
        """`user_prefixes`: each issuer's username_prefix, which every policy and reviewer user must name;
        `known_masks`: the mask names the masking config defines (a rule naming another is a config error,
        at start-up and on reload, rather than a 500 on every request it matches); with `config_path`,
        `read_config` reads those again from kubegate.yaml whenever it changes."""
        if config_path is not None and read_config is None:
            raise ValueError("a watched config_path needs read_config")
        self._read_config = read_config
        self._known_masks = known_masks
        self._config_rules = tuple(config_rules)
        self._dirs = tuple(policy_dirs)
        self._files = tuple(files)
        self._config_path = config_path
        self._prefixes = tuple(user_prefixes)
        self._error = ""
        self._fingerprint = ""
        self._ruleset = self._load()

    @classmethod
    def from_rules(cls, rules: Iterable[PolicyRule]) -> PolicyEngine:
        return cls(tuple(rules))

    # -- loading ---------------------------------------------------------------------------------

    def _watched_files(self) -> list[Path]:
        return ([self._config_path] if self._config_path else []) + list(self._files) + policy_files(self._dirs)

    def _load(self) -> RuleSet:
        if self._config_path is not None and self._read_config is not None:
            sources = self._read_config(self._config_path)
            self._config_rules, self._dirs = sources.rules, sources.dirs
            self._prefixes, self._known_masks = sources.user_prefixes, sources.known_masks
        self._fingerprint = fingerprint(self._watched_files())
        source = str(self._config_path) if self._config_path else "config"
        files = list(self._files) + policy_files(self._dirs)
        ruleset = RuleSet.build(
            load_rules(self._config_rules, files, config_source=source, user_prefixes=self._prefixes)
        )
        if self._known_masks is not None:
            problems = unknown_masks(ruleset, self._known_masks)
            if problems:
                raise ConfigError("\n".join(problems))
        return ruleset

    def reload(self) -> bool:
        """Reload if any watched file changed. A bad change keeps the previous rules and sets status()."""
        try:
            current = fingerprint(self._watched_files())
        except ConfigError as exc:
            current = f"error: {exc}"
        if current == self._fingerprint:
            return False
        previous = (self._config_rules, self._dirs, self._prefixes)
        try:
            ruleset = self._load()
        except ConfigError as exc:
            self._config_rules, self._dirs, self._prefixes = previous
            self._fingerprint = current
            self._error = str(exc)
            log.error("policy reload failed; keeping the previous %d rules:\n%s", len(self._ruleset.rules), exc)
            return True
        self._ruleset, self._error = ruleset, ""
        log.info("policy reloaded: %d rules", len(ruleset.rules))
        return True

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the policy files every `interval` seconds and reload on change; runs until cancelled."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload)

    def status(self) -> dict[str, Any]:
        return {"ok": not self._error, "rules": len(self._ruleset.rules), "error": self._error}

    @property
    def rules(self) -> tuple[PolicyRule, ...]:
        return tuple(r.rule for r in self._ruleset.rules)

    def unknown_masks(self, known: frozenset[str]) -> list[str]:
        return unknown_masks(self._ruleset, known)

    @property
    def needs_object(self) -> bool:
        """Whether a rule reads the request body (a condition on `object`, or `names` on a create)."""
        return self._ruleset.needs_object

    # -- deciding --------------------------------------------------------------------------------

    def decide(self, identity: Identity, info: RequestInfo, connection: str, obj: Any = None) -> Decision:
        facts = Facts.of(identity, info, connection, obj)
        matched = [r for r in self._ruleset.candidates(identity, info) if r.matches(facts)]
        return build_decision(facts, matched)

    def before_object(self, identity: Identity, info: RequestInfo, connection: str) -> Decision | None:
        """The decision as far as it can be made without the object the request writes, or None when no
        rule that could match reads it (decide() needs no object then).

        Rules whose only open checks read the object are assumed to match if they allow or review, and
        not to match if they deny: a deny here is final, and otherwise its role is the one the request
        will need, so kubegate can ask the cluster what it would store (a dry run as the caller)."""
        facts = Facts.of(identity, info, connection)
        verdicts = [(r, r.matches_but_object(facts)) for r in self._ruleset.candidates(identity, info)]
        if all(v is not None for _, v in verdicts):
            return None
        assumed = [r for r, v in verdicts if v or (v is None and r.rule.action != "deny")]
        return build_decision(facts, assumed)

    def explain(self, identity: Identity, info: RequestInfo, connection: str, obj: Any = None) -> Decision:
        """decide(), over every rule without the index, with each non-matching rule's first failed check."""
        facts = Facts.of(identity, info, connection, obj)
        matched: list[CompiledRule] = []
        misses: list[RuleMiss] = []
        for r in self._ruleset.rules:
            if r.matches(facts):
                matched.append(r)
            else:
                misses.append(RuleMiss(r.name, r.rule.action, r.why_not(facts), r.source))
        decision = build_decision(facts, matched)
        return Decision(
            decision.action,
            decision.matches,
            decision.message,
            decision.masks,
            decision.role,
            decision.role_scope,
            decision.reviewers,
            tuple(misses),
        )


def unknown_masks(ruleset: RuleSet, known: frozenset[str]) -> list[str]:
    """`FILE: policies[i].mask: ...` for each mask name `known` lacks: the gateway would refuse (500) every
    request such a rule matches."""
    problems = []
    for r in ruleset.rules:
        file, _, where = r.source.rpartition(" ")
        problems += [
            f"{file}: {where}.mask: {name!r} is not a mask profile or detector; use one of {', '.join(sorted(known))}"
            for name in r.rule.mask
            if name not in known
        ]
    return problems
