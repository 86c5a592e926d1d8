"""Admin API for access requests: list, show, approve, deny, revoke, and ask for a scope.

Any verified identity may call it; what it may see and do is decided per request: its own requests,
the requests whose rules name it as a reviewer, and everything for admins and auditors (who still
approve only what the policy lets them review). Nobody decides their own request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from kubegate.approvals.model import STATES, AccessRequest, ResourceRef, Scope
from kubegate.approvals.service import ApprovalService
from kubegate.durations import parse_duration
from kubegate.identity.model import Identity
from kubegate.kube.status import Refused, status_response
from kubegate.store.engine import StoreError, describe
from kubegate.web.auth import Authorize

ServiceGetter = Callable[[], ApprovalService | None]
Roles = Callable[[Identity], set[str]]
Handler = Callable[[web.Request, Identity, ApprovalService], Awaitable[web.StreamResponse]]
DEFAULT_LIMIT, MAX_LIMIT = 100, 500
SEE_ALL = {"admin", "auditor"}


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type="application/json")


def _bad(message: str) -> Refused:
    return Refused(400, message, reason="BadRequest")


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _bad(f"the request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _bad("the request body must be a JSON object")
    return data


def _text(data: dict[str, Any], key: str, limit: int = 2000) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise _bad(f"{key} must be a string of at most {limit} characters")
    return value


def _str_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(f"{key} must be a list of names (or one comma-separated string)")
    return [v.strip() for v in value]


def visible(request: AccessRequest, identity: Identity, roles: set[str]) -> bool:
    return bool(roles & SEE_ALL) or request.requested_by(identity) or request.reviewable_by(identity)


def setup_routes(
    app: web.Application, service_getter: ServiceGetter, authorize: Authorize, roles: Roles, server: Callable[[], str]
) -> None:
    """GET/POST /api/v1/requests, GET /api/v1/requests/{id}, POST /api/v1/requests/{id}/approve|deny|revoke.
    `server` is the gateway's base URL for approve commands (never the request's Host header)."""

    def guarded(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                identity = await authorize(request, set())
                service = service_getter()
                if service is None:
                    raise Refused(
                        503,
                        "approvals are not running on this kubegate yet; try again in a moment",
                        reason="ServiceUnavailable",
                    )
                return await handler(request, identity, service)
            except Refused as exc:
                return exc.response()
            except (StoreError, SQLAlchemyError, OSError) as exc:
                return status_response(
                    503,
                    f"the approval store is unavailable: {describe(exc)}; try again or contact the kubegate operator",
                    "ServiceUnavailable",
                )

        return run

    async def load(service: ApprovalService, request_id: str, identity: Identity) -> AccessRequest:
        found = await service.get(request_id)
        if found is None or not visible(found, identity, roles(identity)):
            # The same answer for "absent" and "not yours": ids are not an oracle.
            raise Refused(
                404,
                f"access request {request_id} does not exist or is not one you may see; list yours "
                "with `kubegate requests list`",
                reason="NotFound",
            )
        return found

    async def list_requests(request: web.Request, identity: Identity, service: ApprovalService) -> web.StreamResponse:
        state = request.query.get("state", "pending")
        if state != "all" and state not in STATES:
            raise _bad(f"state must be all or one of {', '.join(STATES)}")
        raw = request.query.get("limit", str(DEFAULT_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise _bad(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        now = service.clock()
        mine = roles(identity)
        # Stored state "pending" may have run out: filter on the state a reader would see.
        stored = [] if state == "all" else (["pending"] if state in ("pending", "expired") else [state])
        if state == "expired":
            stored.append("expired")
        found = await service.list(stored, MAX_LIMIT)
        items = [
            r.as_dict(now)
            for r in found
            if visible(r, identity, mine) and (state == "all" or r.effective_state(now) == state)
        ]
        return _json({"kind": "AccessRequestList", "items": items[: int(raw)]})

    async def show(request: web.Request, identity: Identity, service: ApprovalService) -> web.StreamResponse:
        found = await load(service, request.match_info["id"], identity)
        return _json(found.as_dict(service.clock()))

    async def approve(request: web.Request, identity: Identity, service: ApprovalService) -> web.StreamResponse:
        request_id = request.match_info["id"]
        await load(service, request_id, identity)
        data = await _body(request)
        done = await service.approve(request_id, identity, _text(data, "comment"))
        return _json(done.as_dict(service.clock()))

    async def deny(request: web.Request, identity: Identity, service: ApprovalService) -> web.StreamResponse:
        request_id = request.match_info["id"]
        await load(service, request_id, identity)
        data = await _body(request)
        done = await service.deny(request_id, identity, _text(data, "reason"))
        return _json(done.as_dict(service.clock()))

    async def revoke(request: web.Request, identity: Identity, service: ApprovalService) -> web.StreamResponse:
        request_id = request.match_info["id"]
        await load(service, request_id, identity)
        data = await _body(request)
        done = await service.revoke(request_id, identity, _text(data, "reason"), admin="admin" in roles(identity))
        return _json(done.as_dict(service.clock()))

    async def create(request: web.Request, identity: Identity, service: ApprovalService) -> web.StreamResponse:
        data = await _body(request)
        try:
            resources = tuple(ResourceRef.parse(r) for r in _str_list(data, "resources"))
            duration = parse_duration(data.get("duration", "1h"))
        except ValueError as exc:
            raise _bad(str(exc)) from exc
        scope = Scope(
            namespace=_text(data, "namespace", 253),
            verbs=tuple(_str_list(data, "verbs")),
            resources=resources,
            duration=duration,
        )
        created = await service.ask_scope(
            identity, _text(data, "connection", 63), scope, _text(data, "reason"), server()
        )
        return _json(created.as_dict(service.clock()), status=201)

    app.router.add_get("/api/v1/requests", guarded(list_requests))
    app.router.add_post("/api/v1/requests", guarded(create))
    app.router.add_get("/api/v1/requests/{id}", guarded(show))
    app.router.add_post("/api/v1/requests/{id}/approve", guarded(approve))
    app.router.add_post("/api/v1/requests/{id}/deny", guarded(deny))
    app.router.add_post("/api/v1/requests/{id}/revoke", guarded(revoke))
