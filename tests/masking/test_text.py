"""Text detectors and the streaming masker: what is masked, and that chunking never changes it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubegate.masking.detectors import (
    BUILTIN_DETECTORS,
    TRIGGER_SEARCH_BYTES,
    TRIGGER_SEARCH_TEXT,
    TRIGGERS,
    compile_detector,
)
from kubegate.masking.marker import MARKER, MARKER_BYTES
from kubegate.masking.text import TextMasker, TextRules
from tests.masking.builders import split

RULES = TextRules(BUILTIN_DETECTORS, pem=True)
GHP = "ghp_" + "Zx9" * 12
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.c2lnbmF0dXJlLWJ5dGVz"
PEM = (
    b"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAyQ2Y0tLkb8\nq3N0cmluZ3NlY3JldGJvZHk9\n"
    b"-----END RSA PRIVATE KEY-----\n"
)

# (line, the secret in it that must disappear, what must stay)
CASES = [
    ("aws key AKIAIOSFODNN7EXAMPLE in use\n", "AKIAIOSFODNN7EXAMPLE", "aws key "),
    ("temp ASIAY34FZKBOKMUTVV7A\n", "ASIAY34FZKBOKMUTVV7A", "temp "),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = ",
    ),
    (
        '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}\n',
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        '{"SecretAccessKey": "',
    ),
    (f"Authorization: Bearer {JWT}\n", JWT, "Authorization: Bearer "),
    (f"token {JWT}.\n", JWT, "token "),
    (f"clone with {GHP} now\n", GHP, "clone with "),
    (
        "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz\n",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "pat ",
    ),
    ("gitlab glpat-Abc123_def456-ghi789jk\n", "glpat-Abc123_def456-ghi789jk", "gitlab "),
    ("slack xoxb-123456789012-abcdefABCDEF\n", "xoxb-123456789012-abcdefABCDEF", "slack "),
    ("DB_PASSWORD=hunter2-is-long && next\n", "hunter2-is-long", "DB_PASSWORD="),
    ('config password: "correct horse battery"\n', "correct horse battery", 'config password: "'),
    ("api_key='k-123-456' other\n", "k-123-456", "api_key='"),
    ('{"level":"info","token":"tok_abcdef123"}\n', "tok_abcdef123", '{"level":"info","token":"'),
    ("GET /cb?access_token=abc123def&x=1\n", "abc123def", "&x=1"),
    ("dsn postgres://app:s3cr3t-pw@db:5432/app\n", "s3cr3t-pw", "postgres://app:"),
]


def run(data: bytes, cuts: list[int] | None = None, masker: TextMasker | None = None) -> bytes:
    m = masker or RULES.stream()
    chunks = split(data, cuts) if cuts is not None else [data]
    return b"".join(m.feed(c) for c in chunks) + m.flush()


@pytest.mark.parametrize(("line", "secret", "kept"), CASES)
def test_each_detector_masks_its_secret_and_keeps_the_rest(line: str, secret: str, kept: str) -> None:
    out = run(line.encode())
    assert secret.encode() not in out
    assert MARKER_BYTES in out
    assert kept.encode() in out


@pytest.mark.parametrize(("line", "secret", "kept"), CASES)
def test_a_secret_split_at_any_byte_is_still_masked_the_same(line: str, secret: str, kept: str) -> None:
    data = line.encode()
    whole = run(data)
    for cut in range(1, len(data)):
        assert run(data, [cut]) == whole
    assert run(data, list(range(len(data)))) == whole


def test_ordinary_log_lines_pass_unchanged() -> None:
    text = (
        b"2024-05-01T10:00:00Z INFO started server on :8080\n"
        b"GET /healthz 200 0.3ms user-agent=kube-probe/1.30\n"
        b"processed 42 items in 1.2s; see https://example.com/docs?page=2\n"
    )
    assert run(text, [7, 30, 61, 90]) == text


def test_pem_block_across_chunks_keeps_begin_and_end_and_hides_the_body() -> None:
    """The body goes, its line breaks stay: the log has as many lines as before."""
    data = b"loading key\n" + PEM + b"key loaded\n"
    body_lines = PEM.split(b"-----END")[0].count(b"\n")
    expected = (
        b"loading key\n-----BEGIN RSA PRIVATE KEY-----"
        + MARKER_BYTES
        + b"\n" * body_lines
        + b"-----END RSA PRIVATE KEY-----\nkey loaded\n"
    )
    assert expected.count(b"\n") == data.count(b"\n")
    assert run(data) == expected
    for cut in range(1, len(data)):
        assert run(data, [cut]) == expected, cut
    assert run(data, list(range(0, len(data), 3))) == expected


def test_pem_body_is_dropped_as_it_arrives_not_buffered() -> None:
    m = RULES.stream()
    first = m.feed(b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n")
    assert first == b"-----BEGIN PRIVATE KEY-----" + MARKER_BYTES + b"\n\n"
    assert m.feed(b"BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n" * 100) == b"\n" * 100
    assert m.feed(b"-----END PRIVATE KEY-----\nnext line\n") == b"-----END PRIVATE KEY-----\nnext line\n"


def test_pem_inside_an_escaped_json_log_line() -> None:
    line = b'{"msg":"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEEIBkg\\n-----END EC PRIVATE KEY-----\\n"}\n'
    assert b"MHcCAQEEIBkg" not in run(line, [20, 45, 60])


def test_text_is_released_without_waiting_for_the_end_of_the_stream() -> None:
    m = RULES.stream()
    assert m.feed(b"first line\nsecond li") == b"first line\nsecond li"
    assert m.feed(b"ne, db_pass") == b"ne, db_"  # "pass" may still become "password=..."
    assert m.feed(b"ing ok and then ghp_Zx9Zx9") == b"passing ok and then "
    assert m.feed(b"Zx9" * 10 + b"Zx9Zx9 done\n") == b"" + MARKER_BYTES + b" done\n"
    assert m.flush() == b""


def test_a_newline_releases_the_line_before_it() -> None:
    m = RULES.stream()
    assert m.feed(b"password=abc\n") == b"password=" + MARKER_BYTES + b"\n"


def test_lookbehind_sees_across_chunks() -> None:
    # AKIA... preceded by an uppercase letter is not a key id on its own; a cut there must not change that.
    data = b"XAKIAIOSFODNN7EXAMPLE\n"
    assert run(data) == data
    assert run(data, [1]) == data


def test_hold_back_is_bounded_and_fails_closed() -> None:
    secret = b"ghp_" + b"A" * 5000
    m = TextMasker(BUILTIN_DETECTORS, pem=True, max_hold=1024)
    out = b""
    for chunk in split(secret + b" rest of line\nnext line\n", range(0, 6000, 100)):
        out += m.feed(chunk)
        assert len(m._buf) <= 1024 + 100
    out += m.flush()
    assert b"AAAA" not in out
    assert out == MARKER_BYTES + b"\nnext line\n"


def test_user_detector_with_a_secret_group() -> None:
    d = compile_detector("acme", r"acme-key:(?P<secret>[a-z0-9]{8})")
    rules = TextRules((d,), pem=False)
    assert rules.mask("use acme-key:abcd1234 here") == f"use acme-key:{MARKER} here"
    assert rules.mask("no match acme-key:short") == "no match acme-key:short"


def test_mask_str_leaves_clean_strings_identical() -> None:
    value = "just a config value"
    assert RULES.mask(value) is value


@pytest.mark.parametrize("pattern", ["(unclosed", "a*"])
def test_bad_user_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="detector bad"):
        compile_detector("bad", pattern)


@pytest.mark.parametrize(("line", "secret", "kept"), CASES)
def test_every_built_in_match_holds_a_trigger(line: str, secret: str, kept: str) -> None:
    # Lines without a trigger skip the detectors, so a match without one would go unmasked.
    data = line.encode()
    matches = [m for d in BUILTIN_DETECTORS for m in d.pattern.finditer(data)]
    assert matches
    for m in matches:
        assert any(t in m.group().lower() for t in TRIGGERS), m.group()


@pytest.mark.parametrize("trigger", [*TRIGGERS, b"-----BEGIN"])
def test_the_one_trigger_search_finds_every_trigger(trigger: bytes) -> None:
    # It stands in for a find per trigger: in text and bytes, in any case, anywhere in a line.
    text = "x " + trigger.decode().upper() + " y"
    assert TRIGGER_SEARCH_TEXT(text.lower()) is not None
    assert TRIGGER_SEARCH_BYTES(text.encode().lower()) is not None


def test_only_clean_strings_are_remembered() -> None:
    rules = TextRules(BUILTIN_DETECTORS, pem=True)
    assert rules.mask("serviceaccount-tokens") == "serviceaccount-tokens"
    assert rules.mask("password=hunter22") != "password=hunter22"
    assert rules.mask("password=hunter22") != "password=hunter22"
    assert list(rules.clean) == ["serviceaccount-tokens"]


def _streamed(rules: TextRules, value: str) -> str:
    masker = rules.stream()
    out = masker.feed(value.encode()) + masker.flush()
    return out.decode(errors="replace")


_assignments = st.tuples(
    st.sampled_from([t.decode() for t in TRIGGERS]),
    st.sampled_from(["=", ": ", "\t", " ", ""]),
    st.text("abcXYZ019_-/+=.", max_size=44),
).map("".join)
_pieces = st.sampled_from([*(c[0] for c in CASES), PEM.decode(), "-----BEGIN", " ", "\n", "plain", "acme_abcd"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.one_of(_assignments, _pieces, st.text(max_size=12)), max_size=6).map("".join))
def test_masking_one_string_is_the_streamed_result(value: str) -> None:
    """TextRules.mask skips strings no detector can match; it must never skip one the stream would mask."""
    user = TextRules((*BUILTIN_DETECTORS, compile_detector("acme", r"acme_[a-z]{4}")), pem=False)
    for rules in (RULES, TextRules(BUILTIN_DETECTORS, pem=False), user):
        expected = _streamed(rules, value)
        assert rules.mask(value) == (value if expected.encode() == value.encode() else expected)
