"""Where signing keys may come from: https, or plain HTTP only to this machine (development issuers).

Keys fetched over a network anyone can rewrite would let that network mint any identity.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or the name `localhost` exactly (not `localhost.attacker.example`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_url_problem(url: str) -> str | None:
    """Why kubegate must not fetch issuer documents or keys from `url`, or None when it may."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return f"{url!r} must be an https:// URL"
    if parts.scheme == "http" and not is_loopback(host):
        return (
            f"{url!r} must be https://: plain http is allowed only for a loopback address "
            "(127.0.0.0/8, ::1 or localhost)"
        )
    return None


def is_plain_http(url: str) -> bool:
    return urlsplit(url).scheme == "http"
