"""What a model reads: objects without managedFields, as YAML, never longer than the configured cap."""

from __future__ import annotations

import copy
import difflib
from typing import Any

import yaml

NOISE = ("managedFields",)
DIFF_NOISE = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")


def trimmed(obj: Any, drop: tuple[str, ...] = NOISE) -> Any:
    """A copy without the metadata fields no model needs (for a list, in every item)."""
    if not isinstance(obj, dict):
        return obj
    out = copy.deepcopy(obj)
    for item in [out, *(out.get("items") or [])]:
        meta = item.get("metadata") if isinstance(item, dict) else None
        if isinstance(meta, dict):
            for key in drop:
                meta.pop(key, None)
    return out


def dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


def fit(text: str, cap: int, hint: str) -> str:
    """`text` cut to `cap` characters, saying so and what to ask for instead."""
    if len(text) <= cap:
        return text
    return text[:cap] + f"\n... [kubegate cut this result at {cap} characters: {hint}]\n"


def items_that_fit(listing: dict[str, Any], cap: int) -> int:
    """How many of a list's items fit in `cap` characters of YAML (at least one)."""
    size, count = len(dump({k: v for k, v in listing.items() if k != "items"})), 0
    for item in listing.get("items") or []:
        size += len(dump([item]))
        if size > cap and count:
            break
        count += 1
    return count


def diff(before: Any, after: Any, name: str) -> str:
    """A unified diff of two objects as YAML, without bookkeeping fields; "" when they are the same."""
    old = dump(trimmed(before, DIFF_NOISE)).splitlines(keepends=True) if before else []
    new = dump(trimmed(after, DIFF_NOISE)).splitlines(keepends=True) if after else []
    return "".join(difflib.unified_diff(old, new, f"{name} (before)", f"{name} (after)"))
