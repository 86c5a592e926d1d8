"""A byte-level proof that masking would leave a JSON response body as it is, so the masking stage can
send it without walking the decoded document and encoding it again.

Masking changes a body only through (1) a kind the plan masks (Secret, ConfigMap, pods and their
templates, TokenRequest, a field rule's kind), named by the body or by the request's resource, (2) a
last-applied annotation, or (3) a text detector finding a credential in a string. Each leaves a trace
in the raw bytes: a kind is a JSON string, so its value starts with `"Kind`; the annotation's key is
its literal bytes; and every match of a built-in detector contains one of its triggers (detectors.py),
which a search of the lower-cased bytes finds. Text detectors read values, never keys, so a trigger
inside a key (`"secretName":`, `"automountServiceAccountToken":`) proves nothing and is skipped: a
trigger holds no quote or backslash, so it lies inside one string, whose closing quote is the next one
not escaped, and a key's closing quote is followed by a colon. JSON escapes are what could hide a trace (`\\u0053ecret`,
`:\\/\\/`), so a body holding `\\u` or `\\/` always takes the full path; the other escapes decode to a
quote, a backslash or a control character, which no kind name or trigger contains. User detectors
promise no trigger, so a plan that scans text with one always takes the full path too.

Both searches are one Aho-Corasick pass each (ahocorasick-rs), several times faster than the walk.
"""

from __future__ import annotations

from functools import lru_cache

import ahocorasick_rs

from kubegate.masking.detectors import TRIGGER_WORDS
from kubegate.masking.fields import LAST_APPLIED
from kubegate.masking.plan import ANY_KIND, Plan

_TRIGGERS = ahocorasick_rs.BytesAhoCorasick(list(TRIGGER_WORDS))
_ALWAYS = (b"\\u", b"\\/", LAST_APPLIED.encode())


@lru_cache(maxsize=256)
def _traces(kinds: frozenset[str]) -> ahocorasick_rs.BytesAhoCorasick:
    """What in the raw bytes may lead a plan masking these kinds to change something (case-sensitive)."""
    return ahocorasick_rs.BytesAhoCorasick([*_ALWAYS, *(b'"' + k.encode() for k in sorted(kinds) if k != ANY_KIND)])


def untouched(plan: Plan, body: bytes | bytearray, kind_hint: str | None) -> bool:
    """True only if masking `body` with `plan` would change nothing (False means: mask it to know)."""
    if ANY_KIND in plan.rules or (kind_hint is not None and kind_hint in plan.kinds):
        return False
    if plan.scan_text_fields and not plan.text.triggered:
        return False
    if _traces(plan.kinds).find_matches_as_indexes(body):
        return False
    if not plan.scan_text_fields:
        return True
    return all(in_key(body, start) for _, start, _ in _TRIGGERS.find_matches_as_indexes(body.lower()))


def in_key(body: bytes | bytearray, at: int) -> bool:
    """Whether the string holding body[at] is an object key (its closing quote is followed by a colon)."""
    end = body.find(b'"', at)
    while end > 0:
        backslashes = 0
        while end > backslashes and body[end - 1 - backslashes] == 0x5C:  # odd run of backslashes: escaped
            backslashes += 1
        if backslashes % 2 == 0:
            break
        end = body.find(b'"', end + 1)
    return end > 0 and body[end + 1 : end + 65].lstrip(b" \t\r\n").startswith(b":")
