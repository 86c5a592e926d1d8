"""Strings kubegate keeps outside any object (command lines, request targets, queries, messages), through
credentials-in-text before they are recorded or shown to reviewers, whatever the policy masks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

UNSCRUBBED = frozenset({"body", "encoding", "hash", "prev_hash"})  # bodies carry the decision's own masks
TARGETS = frozenset({"path", "query"})


def scrubbed(value: Any, scrub: Callable[[str], str], key: str = "") -> Any:
    """`value` with every string outside a body through `scrub`: a token in a command line, a query or a
    Status message is never stored. A percent-encoded target is decoded first, or the token hides."""
    if isinstance(value, str):
        if key in UNSCRUBBED:
            return value
        if key in TARGETS and "%" in value:
            decoded = unquote_plus(value)
            masked = scrub(decoded)
            return value if masked == decoded else masked
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrubbed(v, scrub, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v, scrub, key) for v in value]
    return value
