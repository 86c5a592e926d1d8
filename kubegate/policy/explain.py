"""Describe a hypothetical request for `policy explain` (CLI and admin API): the identity the gateway
would build and the RequestInfo kube-apiserver would parse, from a few flags or a kubectl command line."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import BadPath, RequestInfo, parse_request_info
from kubegate.policy.kubectl import KubectlParseError, ResourceType, api_path, parse_kubectl, resolve_type

if TYPE_CHECKING:
    from kubegate.config import Config

METHODS = {
    "get": "GET",
    "list": "GET",
    "watch": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
}


class ExplainError(ValueError):
    """The hypothetical request cannot be built; the message says what to write instead."""


def identity_for(
    config: Config | None, sub: str, user: str | None, issuer: str, groups: list[str], claims: dict[str, str]
) -> Identity:
    """The identity the gateway would build: username prefixed as the matching issuer config says (with
    no issuer given, the only configured one, as policy reads a bare subject then)."""
    issuers = config.identity.issuers if config else []
    if not issuer and len(issuers) == 1:
        issuer = issuers[0].url
    prefix = ""
    for iss in issuers:
        if iss.url == issuer.rstrip("/") or iss.url == issuer:
            prefix = iss.user_prefix
    return Identity(issuer=issuer, subject=sub, username=user or f"{prefix}{sub}", groups=tuple(groups), claims=claims)


def request_from_flags(
    verb: str,
    resource: str,
    subresource: str = "",
    api_group: str | None = None,
    namespace: str = "",
    name: str = "",
    command: str = "",
) -> RequestInfo:
    if verb not in METHODS:
        raise ExplainError(
            f"verb {verb!r}: use one of {', '.join(METHODS)} (exec is verb create on resource pods/exec)"
        )
    res, _, sub = resource.partition("/")
    sub = sub or subresource
    try:
        rt = resolve_type(res)
    except KubectlParseError as exc:
        raise ExplainError(str(exc)) from exc
    if api_group is not None:
        rt = ResourceType(api_group, rt.version if rt.group == api_group else "v1", rt.plural, rt.namespaced, rt.kind)
    collection = verb in ("list", "watch", "deletecollection") or (verb == "create" and not sub)
    path = api_path(rt, namespace, "" if collection else name, sub)
    query = [("command", c) for c in shlex.split(command)] if command else []
    if verb == "watch":
        query.append(("watch", "1"))
        if name:
            query.append(("fieldSelector", f"metadata.name={name}"))
    try:
        return parse_request_info(METHODS[verb], path, urlencode(query))
    except BadPath as exc:
        raise ExplainError(f"that request cannot be built: {exc}") from exc


def request_from_kubectl(argv: list[str]) -> tuple[RequestInfo, Any]:
    """(request info, body object or None) of a kubectl command line."""
    try:
        req = parse_kubectl(argv)
    except KubectlParseError as exc:
        raise ExplainError(str(exc)) from exc
    return req.info, req.obj
