"""Who may use the admin API: the caller's own OIDC token, mapped to roles by group."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from kubegate.identity.config import IdentityConfig
from kubegate.identity.model import AuthError, Identity
from kubegate.identity.stage import TokenVerifier, bearer_token
from kubegate.kube.status import Refused

Authorize = Callable[[web.Request, set[str]], Awaitable[Identity]]
ReviewerCheck = Callable[[Identity], bool]
"""Whether a policy rule names the identity (a group of it, or the user) as a reviewer."""


def roles_of(identity: Identity, config: IdentityConfig, is_reviewer: ReviewerCheck | None = None) -> set[str]:
    """admin and auditor come from the config's groups; reviewer also from the policy's reviewer lists
    (which requests a reviewer may decide is checked per request, against that request's rules)."""
    groups = set(identity.groups)
    roles = set()
    if groups & set(config.admin_groups):
        roles |= {"admin", "auditor", "reviewer"}
    if groups & set(config.auditor_groups):
        roles.add("auditor")
    if is_reviewer is not None and is_reviewer(identity):
        roles.add("reviewer")
    return roles


def make_authorize(
    verifier: TokenVerifier, config: IdentityConfig, is_reviewer: ReviewerCheck | None = None
) -> Authorize:
    async def authorize(request: web.Request, roles: set[str]) -> Identity:
        try:
            identity = await verifier.verify(bearer_token(request.headers.get("Authorization")))
        except AuthError as exc:
            raise Refused(
                401,
                f"kubegate refused the token: {exc.reason}; pass your OIDC token (--token or KUBEGATE_TOKEN)",
                reason="Unauthorized",
            ) from exc
        if roles and not roles & roles_of(identity, config, is_reviewer):
            raise Refused(
                403,
                f"{identity.username} may not use this part of the kubegate API: it needs one "
                f"of the roles {', '.join(sorted(roles))}, given by identity.admin_groups or "
                "identity.auditor_groups in the kubegate config (reviewer: also by being named as a "
                "reviewer in a policy rule)",
                reason="Forbidden",
            )
        return identity

    return authorize
