"""Tokens the credential plugin fetched over the network, kept per source and audience in the user's cache
directory, so the kubectl calls of one CI job ask the token service once, not once per call.

Standard library only: this runs on every kubectl invocation. Files are private (0700 directory, 0600
file) and hold only the token and its expiry; nothing here logs or prints a token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from pathlib import Path

# A cached token is used only while it has at least this many seconds left, so kubectl never gets a token
# that expires during the call; a fresh one is fetched instead.
REFRESH_BEFORE = 60.0


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/kubegate/tokens (~/.cache/kubegate/tokens by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubegate" / "tokens"


def cache_key(parts: list[str]) -> str:
    """A file name for one token source: everything that decides which token it would hand out."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def jwt_claims(token: str) -> dict[str, object] | None:
    """The unverified payload of a JWT, or None if the token is not one (kubegate verifies, not the plugin)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def load(key: str, now: float | None = None) -> tuple[str, float] | None:
    """The cached token and its exp if it still has REFRESH_BEFORE seconds to live; None otherwise."""
    try:
        entry = json.loads((cache_dir() / f"{key}.json").read_text())
        token, exp = entry["token"], entry["exp"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(token, str) or not isinstance(exp, int | float):
        return None
    if exp - (time.time() if now is None else now) < REFRESH_BEFORE:
        return None
    return token, float(exp)


def store(key: str, token: str, exp: float) -> None:
    """Write atomically with private permissions; a cache that cannot be written is only slower."""
    import tempfile  # only when a token was fetched, which costs far more than the import

    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # mkstemp creates it 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as out:
            json.dump({"token": token, "exp": exp}, out)
        os.replace(tmp, directory / f"{key}.json")
    except OSError:
        Path(tmp).unlink(missing_ok=True)
