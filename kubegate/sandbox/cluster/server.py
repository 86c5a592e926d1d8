"""The aiohttp application: every request is recorded, authenticated, impersonated, authorized and then
served, in kube-apiserver's filter order, so refusals come from the same step they would in a cluster."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from kubegate.kube.requestinfo import BadPath, parse_request_info

from . import discovery, openapi
from .authn import Tokens, impersonate
from .errors import ApiError, bad_request, method_not_allowed, resource_not_found
from .handlers import Api, Call
from .kinds import find
from .negotiation import negotiate
from .rbac import Attributes, Authorizer, User
from .responses import error_response, respond


@dataclass(frozen=True)
class SeenRequest:
    """One request as it reached the cluster: tests use these to prove what the gateway forwarded."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDict[str]


def _non_resource(request: web.Request, path: str) -> web.StreamResponse:
    if request.method not in ("GET", "HEAD"):
        raise method_not_allowed()
    accept = request.headers.get("Accept", "")
    parts = path.strip("/").split("/")
    if path in ("/healthz", "/livez", "/readyz"):
        return web.Response(text="ok", content_type="text/plain")
    if path == "/version":
        return respond(request, discovery.VERSION)
    if path in ("/api", "/apis"):
        target = negotiate(accept, discovery=True)
        if target.form == "discovery":
            return respond(request, discovery.aggregated(legacy=path == "/api"), 200, target.content_type)
        doc = discovery.api_versions(request.host) if path == "/api" else discovery.api_group_list()
        return respond(request, doc)
    if path == "/openapi/v2":
        negotiate(accept)
        return web.Response(body=openapi.swagger_v2(), content_type="application/json")
    if path == "/openapi/v3":
        negotiate(accept)
        return web.Response(body=openapi.index(), content_type="application/json")
    if parts[:2] == ["openapi", "v3"]:
        negotiate(accept)
        gv = parts[2:]
        group_doc = (
            openapi.group_document("", gv[1])
            if gv[:1] == ["api"] and len(gv) == 2
            else (openapi.group_document(gv[1], gv[2]) if gv[:1] == ["apis"] and len(gv) == 3 else None)
        )
        if group_doc is None:
            raise resource_not_found()
        return web.Response(body=group_doc, content_type="application/json")
    negotiate(accept)
    if parts[0] == "api" and len(parts) == 2:
        found = discovery.resource_list("", parts[1])
    elif parts[0] == "apis" and len(parts) == 2:
        found = discovery.api_group(parts[1])
    elif parts[0] == "apis" and len(parts) == 3:
        found = discovery.resource_list(parts[1], parts[2])
    else:
        found = None
    if found is None:
        raise resource_not_found()
    return respond(request, found)


def build_app(tokens: Tokens, authz: Authorizer, api: Api, seen: Callable[[SeenRequest], None]) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        seen(SeenRequest(request.method, request.rel_url.raw_path, request.query_string, CIMultiDict(request.headers)))
        try:
            user: User = tokens.authenticate(request.headers.get("Authorization"))
            user = impersonate(user, request.headers, authz)
            try:
                info = parse_request_info(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string)
            except BadPath as exc:
                raise bad_request(str(exc)) from None
            authz.require(
                Attributes(
                    user,
                    info.verb,
                    info.is_resource_request,
                    info.api_group,
                    info.api_version,
                    info.namespace,
                    info.resource,
                    info.subresource,
                    info.name,
                    info.path,
                )
            )
            if not info.is_resource_request:
                return _non_resource(request, info.path)
            kind = find(info.api_group, info.api_version, info.resource)
            if kind is None:
                raise resource_not_found()
            return await api.handle(Call(request, info, kind, user))
        except ApiError as exc:
            return error_response(request, exc)

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app
