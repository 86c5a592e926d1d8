"""Which rules could match a request, found without testing each rule.

Three independent indexes, each a map from a request value to a bitmask of rule positions (Python
ints, so union and intersection are one operation): verb+resource, namespace (by literal or glob
prefix), and subject (literal groups or users). A rule that cannot be indexed on a dimension is in
that dimension's "any" mask. The candidates are the intersection; the rules' own checks still decide,
so the index only has to be a superset, never exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo
from kubegate.policy.model import PolicyRule
from kubegate.policy.patterns import is_glob

_CACHE_LIMIT = 4096  # keys come from requests: bound every cache


def _glob_prefix(pattern: str) -> str:
    return next((pattern[:i] for i, c in enumerate(pattern) if c in "*?["), pattern)


def _bounded_put(cache: dict[Any, int], key: object, value: int) -> int:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


@dataclass(slots=True)
class RuleIndex:
    verb_resource: dict[tuple[str | None, str | None], int] = field(default_factory=dict)
    ns_exact: dict[str, int] = field(default_factory=dict)
    ns_prefix: dict[str, int] = field(default_factory=dict)
    ns_any: int = 0
    subjects: dict[tuple[str, str], int] = field(default_factory=dict)
    subjects_any: int = 0
    _vr_cache: dict[tuple[str, str], int] = field(default_factory=dict)
    _ns_cache: dict[str, int] = field(default_factory=dict)
    _subject_cache: dict[tuple[object, ...], int] = field(default_factory=dict)

    @classmethod
    def build(cls, rules: Sequence[PolicyRule]) -> RuleIndex:
        index = cls()
        for position, rule in enumerate(rules):
            bit = 1 << position
            index._add_verb_resource(rule, bit)
            index._add_namespace(rule, bit)
            index._add_subject(rule, bit)
        return index

    def _add_verb_resource(self, rule: PolicyRule, bit: int) -> None:
        m = rule.match
        verbs: list[str | None] = [None] if not m.verbs or "*" in m.verbs else list(m.verbs)
        resources: list[str | None] = [None]
        if m.non_resource_urls:
            resources = [""]
        elif m.resources:
            plain = [r.partition("/")[0] for r in m.resources]
            if not any(is_glob(r) for r in plain):
                resources = list(plain)
        for v in verbs:
            for r in resources:
                self.verb_resource[(v, r)] = self.verb_resource.get((v, r), 0) | bit

    def _add_namespace(self, rule: PolicyRule, bit: int) -> None:
        if not rule.match.namespaces:
            self.ns_any |= bit
            return
        for pattern in rule.match.namespaces:
            table, key = (self.ns_prefix, _glob_prefix(pattern)) if is_glob(pattern) else (self.ns_exact, pattern)
            table[key] = table.get(key, 0) | bit

    def _add_subject(self, rule: PolicyRule, bit: int) -> None:
        s = rule.subjects
        for kind, values in (("group", s.groups), ("user", s.users)):
            if values and not any(is_glob(v) for v in values):
                for v in values:
                    self.subjects[(kind, v)] = self.subjects.get((kind, v), 0) | bit
                return
        self.subjects_any |= bit

    def candidates(self, identity: Identity, info: RequestInfo) -> int:
        """A bitmask of the rules that could match (a superset of those that do)."""
        resource = info.resource if info.is_resource_request else ""
        vr = self._vr_cache.get((info.verb, resource))
        if vr is None:
            vr = 0
            for key in ((info.verb, resource), (info.verb, None), (None, resource), (None, None)):
                vr |= self.verb_resource.get(key, 0)
            vr = _bounded_put(self._vr_cache, (info.verb, resource), vr)
        ns = info.namespace
        nsm = self._ns_cache.get(ns)
        if nsm is None:
            nsm = self.ns_any | self.ns_exact.get(ns, 0)
            for i in range(len(ns) + 1):
                nsm |= self.ns_prefix.get(ns[:i], 0)
            nsm = _bounded_put(self._ns_cache, ns, nsm)
        subject = (identity.username, identity.groups)
        sm = self._subject_cache.get(subject)
        if sm is None:
            sm = self.subjects_any | self.subjects.get(("user", identity.username), 0)
            for g in identity.groups:
                sm |= self.subjects.get(("group", g), 0)
            sm = _bounded_put(self._subject_cache, subject, sm)
        return vr & nsm & sm


def positions(mask: int) -> Iterator[int]:
    """Set bits of a mask, lowest first (so rules come out in load order)."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low
