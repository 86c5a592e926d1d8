"""A Plan is one set of mask profiles compiled against the config: what to hide, by kind.

Plans are built once per distinct set of profiles and cached by the Masker, so per-request work
is a dictionary lookup. `kinds` lets the walker skip objects no profile in the plan can touch.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from kubegate.masking import config as c
from kubegate.masking.detectors import BUILTIN_DETECTORS, PEM_DETECTOR, Detector, compile_detector
from kubegate.masking.paths import Step, parse_path
from kubegate.masking.text import TextRules

ANY_KIND = "*"
NO_TEXT = TextRules((), pem=False)
# Where the pod spec sits in each kind that carries one (env-credentials, credentials-in-text).
POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True, slots=True)
class FieldRule:
    name: str
    kind: str
    steps: tuple[Step, ...]
    action: Literal["replace", "detect"]


@dataclass(frozen=True)
class Plan:
    """What one combination of profiles masks. An empty plan (no profiles) masks nothing."""

    secret_values: bool = False
    last_applied: bool = False
    env_credentials: bool = False
    configmap_keys: bool = False
    serviceaccount_tokens: bool = False
    scan_text_fields: bool = False
    text: TextRules = NO_TEXT
    detect: TextRules = NO_TEXT
    env_names: re.Pattern[str] | None = None
    configmap_keys_re: re.Pattern[str] | None = None
    rules: Mapping[str, tuple[FieldRule, ...]] = field(default_factory=dict)
    kinds: frozenset[str] = frozenset()
    last_applied_plan: Plan | None = None

    @property
    def masks_objects(self) -> bool:
        """Whether JSON bodies need masking (and so must arrive as JSON)."""
        return bool(self.kinds) or self.last_applied

    @property
    def masks_anything(self) -> bool:
        return self.masks_objects or bool(self.text)

    def touches(self, kind: str | None) -> bool:
        return kind in self.kinds or ANY_KIND in self.kinds

    def rules_for(self, kind: str) -> tuple[FieldRule, ...]:
        return self.rules.get(kind, ()) + self.rules.get(ANY_KIND, ())

    @property
    def annotation_plan(self) -> Plan:
        """The plan for a last-applied annotation: the object's own plan (the annotation is the object
        in plain text), and with `last-applied` everything the built-in field profiles hide."""
        return self.last_applied_plan or self


def globs(patterns: Iterable[str]) -> re.Pattern[str]:
    """Case-insensitive shell globs as one regex."""
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or r"(?!)", re.IGNORECASE)


@dataclass(frozen=True)
class Catalog:
    """Everything the config defines, compiled once; `plan()` picks from it."""

    env_names: re.Pattern[str]
    configmap_keys: re.Pattern[str]
    detectors: Mapping[str, Detector]
    rules: Mapping[str, FieldRule]

    @classmethod
    def from_config(cls, config: c.MaskingConfig) -> Catalog:
        detectors = {d.name: d for d in BUILTIN_DETECTORS}
        detectors.update({d.name: compile_detector(d.name, d.pattern) for d in config.detectors})
        return cls(
            env_names=globs(config.env_name_patterns),
            configmap_keys=globs(config.configmap_key_patterns),
            detectors=detectors,
            rules={r.name: FieldRule(r.name, r.kind, parse_path(r.path), r.action) for r in config.field_rules},
        )

    @property
    def all_text(self) -> TextRules:
        """credentials-in-text: every built-in and user detector, and PEM blocks."""
        return TextRules(tuple(self.detectors.values()), pem=True)

    def plan(self, atoms: frozenset[str]) -> Plan:
        all_text = self.all_text
        if c.CREDENTIALS_IN_TEXT in atoms:
            text = all_text
        else:
            text = TextRules(tuple(d for n, d in self.detectors.items() if n in atoms), PEM_DETECTOR in atoms)
        rules: dict[str, tuple[FieldRule, ...]] = {}
        for name in sorted(atoms & self.rules.keys()):
            rule = self.rules[name]
            rules[rule.kind] = (*rules.get(rule.kind, ()), rule)
        plan = _with_kinds(
            Plan(
                secret_values=c.SECRET_VALUES in atoms,
                last_applied=c.LAST_APPLIED in atoms,
                env_credentials=c.ENV_CREDENTIALS in atoms,
                configmap_keys=c.CONFIGMAP_KEYS in atoms,
                serviceaccount_tokens=c.SERVICEACCOUNT_TOKENS in atoms,
                scan_text_fields=c.CREDENTIALS_IN_TEXT in atoms,
                text=text,
                detect=text if text else all_text,
                env_names=self.env_names,
                configmap_keys_re=self.configmap_keys,
                rules=rules,
            )
        )
        if not plan.last_applied:
            return plan
        inner = _with_kinds(
            replace(
                plan,
                secret_values=True,
                env_credentials=True,
                configmap_keys=True,
                serviceaccount_tokens=True,
                last_applied=False,
            )
        )
        return replace(plan, last_applied_plan=inner)


def _with_kinds(plan: Plan) -> Plan:
    kinds: set[str] = set(plan.rules)
    if plan.secret_values or plan.serviceaccount_tokens:
        kinds.add("Secret")
    if plan.serviceaccount_tokens:
        kinds.add("TokenRequest")
    if plan.configmap_keys:
        kinds.add("ConfigMap")
    if plan.env_credentials:
        kinds.update(POD_SPEC_PATHS)
    if plan.scan_text_fields:
        kinds.add(ANY_KIND)  # every string of every object
    return replace(plan, kinds=frozenset(kinds))
