"""The Impersonate-* headers that carry a verified identity to the cluster."""

from __future__ import annotations

from urllib.parse import quote

from kubegate.identity.model import RESERVED, Identity
from kubegate.kube.status import Refused

EXTRA_PREFIX = "kubegate.dev/"


def _header_safe(value: str) -> str:
    """Header values must be visible ASCII; anything else is percent-encoded rather than dropped."""
    return value if value.isascii() and value.isprintable() else quote(value, safe=" !#$&'()*+,/:;=?@[]~")


def impersonation_headers(identity: Identity, pass_groups: bool = True) -> list[tuple[str, str]]:
    """User, groups (never `system:*` ones from an identity provider) and extras for issuer and claims.

    Extra keys are lower-case and percent-encoded in the header name, as kube-apiserver expects.
    """
    if identity.username.startswith(RESERVED):
        raise Refused(
            403,
            f"kubegate refused to act as Kubernetes user {identity.username!r}: names starting "
            f"with {RESERVED} belong to Kubernetes itself; the kubegate operator can set the issuer's "
            "username_prefix",
            reason="Forbidden",
        )
    headers = [("Impersonate-User", identity.username)]
    if pass_groups:
        headers += [("Impersonate-Group", g) for g in identity.groups if not g.startswith(RESERVED)]
    extras = {"issuer": identity.issuer, **identity.claims}
    for key, value in extras.items():
        name = quote(f"{EXTRA_PREFIX}{key}".lower(), safe="")
        headers.append((f"Impersonate-Extra-{name}", _header_safe(str(value))))
    return headers
