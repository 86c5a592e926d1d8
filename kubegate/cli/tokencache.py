"""Tokens the credential plugin fetched over the network, kept per source and audience in the user's cache
directory, so the kubectl calls of one CI job ask the token service once, not once per call.

Standard library only, and the cheapest of it (no pathlib, base64 only to read a JWT): this runs on every
kubectl invocation (kubegate.cli.plugin). Files are private (0700 directory, 0600 file) and hold only the
token and its expiry; nothing here logs or prints a token.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

# A cached token is used only while it has at least this many seconds left, so kubectl never gets a token
# that expires during the call; a fresh one is fetched instead.
REFRESH_BEFORE = 60.0


def cache_dir() -> str:
    """$XDG_CACHE_HOME/kubegate/tokens (~/.cache/kubegate/tokens by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kubegate", "tokens")


# `kubegate token` flags that decide how the token is handed out, not which token it is; --write-file takes a value.
HANDING_OUT = frozenset({"--no-cache", "--write-file", "--keep-fresh"})


def argv_key(argv: list[str]) -> str:
    """The cache file for `kubegate token ARGV`: its flags name the source and audience, and a GitHub Actions
    job's token request URL is added, so a runner's cache never hands one job's token to the next. The same
    source spelled differently is only a cache miss. HANDING_OUT flags are left out."""
    parts = ["exec"]
    args = iter(argv)
    for arg in args:
        if arg == "--write-file":
            next(args, None)
        elif arg.partition("=")[0] not in HANDING_OUT:
            parts.append(arg)
    parts.append(os.environ.get("ACTIONS_ID_TOKEN_REQUEST_URL", ""))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def jwt_claims(token: str) -> dict[str, object] | None:
    """The unverified payload of a JWT, or None if the token is not one (kubegate verifies, not the plugin)."""
    import base64  # here: a cached token is handed out without reading it
    import binascii

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
        with open(os.path.join(cache_dir(), f"{key}.json")) as file:
            entry = json.load(file)
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
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # mkstemp creates it 0600
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as out:
            json.dump({"token": token, "exp": exp}, out)
        os.replace(tmp, os.path.join(directory, f"{key}.json"))
    except OSError:
        if os.path.exists(tmp):
            os.unlink(tmp)
