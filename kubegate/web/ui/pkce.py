"""Proof Key for Code Exchange (RFC 7636, S256 only): the authorization code is useless to anyone
who did not also hold the verifier kubegate kept on its side of the login."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def new_verifier() -> str:
    """43 characters from 32 random bytes: the shortest verifier the RFC allows, at full entropy."""
    return secrets.token_urlsafe(32)


def s256(verifier: str) -> str:
    """The code challenge: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str, challenge: str) -> bool:
    return bool(VERIFIER.match(verifier)) and secrets.compare_digest(s256(verifier), challenge)
