"""PKCE S256 as RFC 7636 defines it."""

from __future__ import annotations

from kubegate.web.ui.pkce import VERIFIER, new_verifier, s256, verifier_matches


def test_the_rfc_7636_appendix_b_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert verifier_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")


def test_new_verifiers_are_valid_and_unique() -> None:
    verifiers = {new_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    assert all(VERIFIER.match(v) and len(v) == 43 for v in verifiers)


def test_a_wrong_or_malformed_verifier_does_not_match() -> None:
    verifier = new_verifier()
    assert not verifier_matches(new_verifier(), s256(verifier))
    short = "a" * 42
    assert not verifier_matches(short, s256(short))
    spaced = "a b" + "c" * 50
    assert not verifier_matches(spaced, s256(spaced))
