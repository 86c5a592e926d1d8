"""Field paths such as `spec.template.spec.containers[*].args`, for user-defined field rules.

A path is dot-separated keys; `*` as a key means every value of a mapping, `[*]` every item of a
list and `[N]` one item. Whatever the path reaches is masked whole: a string, or every string
inside a list or mapping, so `args` masks each argument and `data` masks each value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SEGMENT = re.compile(r"^(?P<key>[^.\[\]]+)(?P<subs>(?:\[(?:\*|\d+)\])*)$")
_SUB = re.compile(r"\[(\*|\d+)\]")

ANY_VALUE = "*"
EACH = -1


@dataclass(frozen=True, slots=True)
class Step:
    """A mapping key (or ANY_VALUE), or a list position (int; EACH for all)."""

    key: str | int


def parse_path(path: str) -> tuple[Step, ...]:
    """Split a path into steps, or raise ValueError naming the bad segment."""
    if not path or path.strip() != path:
        raise ValueError(f"{path!r} is not a field path such as spec.template.spec.containers[*].args")
    steps: list[Step] = []
    for segment in path.split("."):
        m = _SEGMENT.match(segment)
        if not m:
            raise ValueError(f"{path!r}: segment {segment!r} is not KEY, * or KEY[*] / KEY[N]")
        steps.append(Step(m.group("key")))
        steps.extend(Step(EACH if s == "*" else int(s)) for s in _SUB.findall(m.group("subs")))
    return tuple(steps)


def map_strings(value: Any, fn: Callable[[str], str]) -> tuple[Any, bool]:
    """Apply fn to every string in value (itself, or inside lists and mappings), in place where possible."""
    if isinstance(value, str):
        new = fn(value)
        return new, new != value
    changed = False
    if isinstance(value, list):
        for i, item in enumerate(value):
            new, did = map_strings(item, fn)
            if did:
                value[i] = new
                changed = True
    elif isinstance(value, dict):
        for k, item in value.items():
            new, did = map_strings(item, fn)
            if did:
                value[k] = new
                changed = True
    return value, changed


def apply_path(obj: Any, steps: tuple[Step, ...], fn: Callable[[str], str]) -> bool:
    """Apply fn to the strings the path reaches in obj, in place; True if anything changed."""
    if not steps:
        return map_strings(obj, fn)[1]
    step, rest = steps[0], steps[1:]
    changed = False
    for container, key in _children(obj, step.key):
        if rest:
            changed |= apply_path(container[key], rest, fn)
        else:
            new, did = map_strings(container[key], fn)
            if did:
                container[key] = new
                changed = True
    return changed


def _children(obj: Any, key: str | int) -> list[tuple[Any, Any]]:
    if isinstance(key, str):
        if not isinstance(obj, dict):
            return []
        if key == ANY_VALUE:
            return [(obj, k) for k in obj]
        return [(obj, key)] if key in obj else []
    if not isinstance(obj, list):
        return []
    if key == EACH:
        return [(obj, i) for i in range(len(obj))]
    return [(obj, key)] if key < len(obj) else []
