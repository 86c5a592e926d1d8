"""The verified identity behind a request, and the one error identity checks raise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

RESERVED = "system:"
"""Kubernetes' own users and groups: kubegate never impersonates one."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller: what policy, approvals, recording and impersonation all key on.

    `username` is the Kubernetes user name kubegate impersonates (issuer prefix + subject);
    `claims` holds only the claims the issuer's config selects (CI-run data such as repository, run_id).
    """

    issuer: str
    subject: str
    username: str
    groups: tuple[str, ...] = ()
    claims: Mapping[str, str] = field(default_factory=dict)
    expires_at: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "issuer": self.issuer,
            "subject": self.subject,
            "username": self.username,
            "groups": list(self.groups),
            "claims": dict(self.claims),
            "expires_at": self.expires_at,
        }


class AuthError(Exception):
    """A token was refused; the message says why and never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
