"""Text detectors: byte patterns for credentials that show up in logs, exec output and free-text fields.

Patterns use the `regex` module, whose partial matching tells the stream masker how much of a
chunk's tail could still grow into a secret (see text.py). A pattern with a group named `secret`
masks only that group (`password=` stays readable); otherwise the whole match is masked.
Detectors match within one line; PEM private keys are the multi-line exception and are handled by
the stream masker as a block (BEGIN line, body, END line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import regex

SECRET_GROUP = "secret"

# Factored by first letter (password, passwd, private_key, secret, token, api_key, apikey,
# access_key, auth_key, credential(s)): the scan then tests one character per position.
_KEYWORDS = rb"p(?:assw(?:or)?d|rivate_?key)|secret|token|a(?:pi_?key|ccess_?key|uth_?key)|credentials?"
_VALUE = (
    rb"(?:\"(?P<secret>[^\"\r\n]+)\"?|'(?P<secret>[^'\r\n]+)'?"
    rb"|(?P<secret>[^\s\"',;&}\]\[)(<>]+))"
)

BUILTIN_PATTERNS: dict[str, bytes] = {
    "aws-access-key-id": rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])",
    "aws-secret-access-key": (
        rb"(?i)(?:aws_?)?secret_?(?:access_?)?key[\"']?[ \t]*[:=>][ \t]*[\"']?"
        rb"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
    ),
    "jwt": rb"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    "github-token": rb"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})",
    "gitlab-token": rb"(?<![A-Za-z0-9_-])gl(?:pat|dt|rt|ptt|soat)-[A-Za-z0-9_-]{20,}",
    "slack-token": rb"(?<![A-Za-z0-9_-])xox[baprs]-[A-Za-z0-9-]{10,}",
    "bearer-token": rb"(?i)(?<![A-Za-z0-9_-])bearer[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{8,}=*)",
    # The next two start at the anchor rather than at the start of the key or scheme (which stay
    # unmasked anyway): scanning is several times faster.
    "url-credentials": rb"://[^\s:/@\"'<>]{1,128}:(?P<secret>[^\s@/\"'<>]{1,256})@",
    "password-assignment": (rb"(?i)(?:" + _KEYWORDS + rb")[A-Za-z0-9_.-]{0,64}[\"']?[ \t]*(?::|=|=>)[ \t]*" + _VALUE),
}

# Every match of a built-in pattern contains one of these (lower-cased), so lines without any are
# skipped after a few fast bytes.find calls instead of running every detector over them.
TRIGGERS: tuple[bytes, ...] = (
    b"akia",
    b"asia",
    b"eyj",
    b"ghp_",
    b"gho_",
    b"ghu_",
    b"ghs_",
    b"ghr_",
    b"github_pat_",
    b"glpat-",
    b"gldt-",
    b"glrt-",
    b"glptt-",
    b"glsoat-",
    b"xoxb-",
    b"xoxa-",
    b"xoxp-",
    b"xoxr-",
    b"xoxs-",
    b"bearer",
    b"://",
    b"passw",
    b"secret",
    b"token",
    b"apikey",
    b"api_key",
    b"accesskey",
    b"access_key",
    b"privatekey",
    b"private_key",
    b"credential",
    b"authkey",
    b"auth_key",
)


def _factored(words: list[str]) -> str:
    """One alternation of literals factored by common prefixes (`a(?:kia|sia|...)`): the regex engine
    then tests one character per branch at each position instead of every literal."""
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[0], []).append(word[1:])
    parts = [
        re.escape(c) + (_factored(rests) if len(rests) > 1 else re.escape(rests[0])) for c, rests in groups.items()
    ]
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


def _minimal(words: list[str]) -> list[str]:
    """Without the words another word is a prefix of: a search finds the shorter one anyway."""
    return sorted(w for w in set(words) if not any(o != w and w.startswith(o) for o in words))


# Every trigger and a PEM block's start, lower-cased: a text with none of them holds nothing to mask.
TRIGGER_WORDS: tuple[bytes, ...] = (*TRIGGERS, b"-----begin")
# Any of them in lower-cased text: one search instead of a find per trigger.
TRIGGER_PATTERN = _factored(_minimal([t.decode() for t in TRIGGER_WORDS]))
TRIGGER_SEARCH_TEXT = re.compile(TRIGGER_PATTERN).search
TRIGGER_SEARCH_BYTES = re.compile(TRIGGER_PATTERN.encode()).search

PEM_BEGIN = regex.compile(rb"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
PEM_END = regex.compile(rb"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
PEM_DETECTOR = "pem-private-key"


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    pattern: regex.Pattern[bytes]
    triggered: bool = False  # every match contains one of TRIGGERS (built-ins only)

    @property
    def has_secret_group(self) -> bool:
        return SECRET_GROUP in self.pattern.groupindex

    def secret_spans(self, m: regex.Match[bytes]) -> list[tuple[int, int]]:
        """The byte ranges of one match that get the marker."""
        if not self.has_secret_group:
            return [m.span()]
        return [s for s in m.spans(SECRET_GROUP) if s[0] < s[1]]


def compile_detector(name: str, pattern: str | bytes, triggered: bool = False) -> Detector:
    """Compile a detector, or raise ValueError saying what is wrong with the pattern."""
    raw = pattern.encode() if isinstance(pattern, str) else pattern
    try:
        compiled = regex.compile(raw)
    except regex.error as exc:
        raise ValueError(f"detector {name}: {pattern!r} is not a valid regular expression: {exc}") from exc
    if compiled.search(b"") is not None:
        raise ValueError(f"detector {name}: {pattern!r} matches the empty string, so it would mask nothing")
    return Detector(name, compiled, triggered)


BUILTIN_DETECTORS: tuple[Detector, ...] = tuple(
    compile_detector(n, p, triggered=True) for n, p in BUILTIN_PATTERNS.items()
)
