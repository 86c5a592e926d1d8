"""Precompiled globs and exec matchers: the per-request work of a rule is set lookups and one regex."""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubegate.policy.model import ExecMatch

_GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


@dataclass(frozen=True, slots=True)
class GlobSet:
    """Any of several globs. Literals are a set lookup; globs one combined regex.

    With `empty_is_literal`, a glob never matches "" (only a literal "" does): `*` means "any
    namespace", not "any namespace or none".
    """

    patterns: tuple[str, ...]
    literals: frozenset[str]
    regex: re.Pattern[str] | None
    empty_is_literal: bool

    @classmethod
    def compile(cls, patterns: Iterable[str], empty_is_literal: bool = True) -> GlobSet:
        patterns = tuple(patterns)
        globs = [p for p in patterns if is_glob(p)]
        regex = re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs)) if globs else None
        return cls(patterns, frozenset(p for p in patterns if not is_glob(p)), regex, empty_is_literal)

    def matches(self, value: str) -> bool:
        if value in self.literals:
            return True
        if self.regex is None or (not value and self.empty_is_literal):
            return False
        return self.regex.match(value) is not None

    def any_matches(self, values: Iterable[str]) -> bool:
        return any(self.matches(v) for v in values)

    def which(self, value: str) -> str:
        """The first pattern that matches `value`, for explanations."""
        if value in self.literals:
            return value
        return next(
            p
            for p in self.patterns
            if is_glob(p) and not (not value and self.empty_is_literal) and fnmatch.fnmatchcase(value, p)
        )


@dataclass(frozen=True, slots=True)
class ArgvMatcher:
    """One `exec` entry: argv globs element by element (trailing "**" = the rest), or a regex."""

    source: str
    globs: tuple[re.Pattern[str], ...] = ()
    rest: bool = False
    regex: re.Pattern[str] | None = None

    @classmethod
    def compile(cls, spec: ExecMatch) -> ArgvMatcher:
        if spec.regex is not None:
            return cls(source=f"regex {spec.regex!r}", regex=re.compile(spec.regex))
        command = list(spec.command or ())
        rest = command[-1] == "**"
        if rest:
            command.pop()
        globs = tuple(re.compile(fnmatch.translate(g)) for g in command)
        return cls(source=f"command {spec.command!r}", globs=globs, rest=rest)

    def matches(self, argv: Sequence[str]) -> bool:
        if self.regex is not None:
            return self.regex.search(shlex.join(argv)) is not None
        if len(argv) < len(self.globs) or (not self.rest and len(argv) != len(self.globs)):
            return False
        return all(g.match(a) is not None for g, a in zip(self.globs, argv, strict=False))
