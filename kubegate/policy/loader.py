"""Gather rules from kubegate.yaml and policy files, reporting every problem as FILE: field: problem."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from kubegate.configbase import ConfigError, format_validation_error, load_yaml
from kubegate.policy.model import PolicyFile, PolicyRule
from kubegate.policy.subjects import qualify_users

POLICY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class SourcedRule:
    """A rule and where it was written (`FILE policies[3]`), for messages and explanations."""

    rule: PolicyRule
    file: str
    index: int

    @property
    def source(self) -> str:
        return f"{self.file} policies[{self.index}]"


def policy_files(dirs: Iterable[Path]) -> list[Path]:
    """The *.yaml/*.yml files of each folder, sorted; hidden files (editor temp files) are skipped."""
    files: list[Path] = []
    for d in dirs:
        try:
            entries = sorted(
                p for p in d.iterdir() if p.suffix in POLICY_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        except OSError as exc:
            raise ConfigError(f"{d}: cannot read the policy folder: {exc.strerror}") from exc
        files.extend(entries)
    return files


def fingerprint(files: Iterable[Path]) -> str:
    """A digest of file names and contents: what changed is what the watcher reloads on."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            digest.update(f"unreadable: {exc}".encode())
        digest.update(b"\0")
    return digest.hexdigest()


def read_policy_file(path: Path) -> list[PolicyRule]:
    """One file: `{policies: [...]}` or a bare list of rules."""
    data = load_yaml(path)
    if isinstance(data, list):
        data = {"policies": data}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: (top level): must be a mapping {{policies: [...]}} or a list of rules, got {type(data).__name__}"
        )
    try:
        return PolicyFile.model_validate(data).policies
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from exc


def load_rules(
    config_rules: Sequence[PolicyRule],
    files: Sequence[Path],
    config_source: str = "config",
    user_prefixes: Sequence[str] = (),
) -> list[SourcedRule]:
    """All rules in order (config first, then files as given), checking names are unique across them and
    qualifying user names with the issuers' `user_prefixes` (see policy/subjects.py).

    Every file is read even after one fails, so one run reports every problem.
    """
    read = [SourcedRule(r, config_source, i) for i, r in enumerate(config_rules)]
    errors: list[str] = []
    for path in files:
        try:
            read.extend(SourcedRule(r, str(path), i) for i, r in enumerate(read_policy_file(path)))
        except ConfigError as exc:
            errors.append(str(exc))
    rules = []
    for sr in read:
        rule, problems = qualify_users(sr.rule, user_prefixes)
        rules.append(SourcedRule(rule, sr.file, sr.index))
        errors.extend(f"{sr.file}: policies[{sr.index}].{field}: {problem}" for field, problem in problems)
    seen: dict[str, str] = {}
    for sr in rules:
        if sr.rule.name in seen:
            errors.append(
                f"{sr.file}: policies[{sr.index}].name: rule name {sr.rule.name!r} "
                f"is already used by {seen[sr.rule.name]}; rule names must be unique"
            )
        else:
            seen[sr.rule.name] = sr.source
    if errors:
        raise ConfigError("\n".join(errors))
    return rules
