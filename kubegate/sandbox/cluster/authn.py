"""Bearer-token authentication and impersonation, as kube-apiserver's filters do them.

Tokens are kept only as SHA-256 digests. Impersonation follows filters/impersonation.go: each requested
user, group, uid and extra value is authorized as verb `impersonate` before the request runs as the
impersonated user, who gains `system:authenticated`.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from .errors import internal, unauthorized
from .rbac import Attributes, Authorizer, User, forbidden_error

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
AUTHN_GROUP = "authentication.k8s.io"
EXTRA_PREFIX = "impersonate-extra-"
_SA_USER = re.compile(r"system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self) -> None:
        self._users: dict[str, User] = {}

    def add(self, token: str, user: str, groups: list[str]) -> None:
        all_groups = tuple(dict.fromkeys([*groups, AUTHENTICATED]))
        self._users[_digest(token)] = User(user, all_groups)

    def authenticate(self, authorization: str | None) -> User:
        """The user behind an `Authorization: Bearer` header; 401 for anything else."""
        parts = (authorization or "").strip().split(" ")
        if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
            raise unauthorized()
        user = self._users.get(_digest(parts[1]))
        if user is None:
            raise unauthorized()
        return user


def _ref(kind: str, name: str, namespace: str = "", api_version: str = "", field_path: str = "") -> str:
    """A v1.ObjectReference printed with Go's %v, as kube's impersonation error shows it."""
    return "{" + " ".join([kind, namespace, name, "", api_version, "", field_path]) + "}"


def _extra_key(header: str) -> str:
    key = header[len(EXTRA_PREFIX) :].lower()
    try:
        return unquote(key, errors="strict")
    except UnicodeDecodeError:
        return key


def impersonate(requester: User, headers: CIMultiDictProxy[str], authz: Authorizer) -> User:
    """The effective user of a request: `requester`, or whom it may and does impersonate."""
    user_name = headers.get("Impersonate-User", "")
    groups_requested = headers.getall("Impersonate-Group", [])
    extras = [(_extra_key(k), v) for k, v in headers.items() if k.lower().startswith(EXTRA_PREFIX)]
    uid = headers.get("Impersonate-Uid", "")
    if not (user_name or groups_requested or extras or uid):
        return requester
    if not user_name:
        refs = [_ref("Group", g) for g in groups_requested]
        refs += [_ref("UserExtra", v, api_version=f"{AUTHN_GROUP}/v1", field_path=k) for k, v in extras]
        if uid:
            refs.append(_ref("UID", uid, api_version=f"{AUTHN_GROUP}/v1"))
        raise internal(f"requested [{' '.join(refs)}] without impersonating a user")

    checks: list[Attributes] = []
    groups: list[str] = []
    sa = _SA_USER.fullmatch(user_name)
    if sa:
        ns, name = sa.group(1), sa.group(3)
        checks.append(Attributes(requester, "impersonate", True, "", "v1", ns, "serviceaccounts", name=name))
        if not groups_requested:
            groups += ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    else:
        checks.append(Attributes(requester, "impersonate", True, "", "v1", resource="users", name=user_name))
    for g in groups_requested:
        checks.append(Attributes(requester, "impersonate", True, "", "v1", resource="groups", name=g))
        groups.append(g)
    extra: dict[str, list[str]] = {}
    for key, value in extras:
        checks.append(
            Attributes(
                requester, "impersonate", True, AUTHN_GROUP, "v1", resource="userextras", subresource=key, name=value
            )
        )
        extra.setdefault(key, []).append(value)
    if uid:
        checks.append(Attributes(requester, "impersonate", True, AUTHN_GROUP, "v1", resource="uids", name=uid))
    for check in checks:
        decision = authz.authorize(check)
        if not decision.allowed:
            raise forbidden_error(check, decision.reason)

    if user_name != ANONYMOUS:
        if not any(g in (AUTHENTICATED, UNAUTHENTICATED) for g in groups):
            groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in groups:
        groups.append(UNAUTHENTICATED)
    return User(user_name, tuple(groups), uid, {k: tuple(v) for k, v in extra.items()})
