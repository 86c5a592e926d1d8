"""The approvals inbox: pending access requests appear by htmx polling without a reload; reviewers
approve or deny with a reason. Decisions go through ApprovalService, which wakes the waiting kubectl
and enforces the rules again (the rule's reviewers only, never one's own request)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from kubegate.approvals.model import AccessRequest
from kubegate.approvals.service import ApprovalService
from kubegate.kube.status import Refused
from kubegate.store.engine import StoreError, describe
from kubegate.web.approvals_api import visible
from kubegate.web.ui.pages import UI, Viewer, error_page, page, render, see_other

PENDING_LIMIT = 200
RECENT_LIMIT = 20
POLL_SECONDS = 2
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def ci_run_url(claims: dict[str, str]) -> str | None:
    """The GitHub Actions run behind a token with `repository` and `run_id` claims."""
    repository, run_id = claims.get("repository", ""), claims.get("run_id", "")
    if REPOSITORY.match(repository) and run_id.isdigit():
        return f"https://github.com/{repository}/actions/runs/{run_id}"
    return None


def diff_lines(summary: str) -> list[tuple[str, str]]:
    """(css class, line) for a reviewer's summary: additions, removals and hunk headers stand out."""
    out = []
    for line in summary.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = ""
        out.append((kind, line))
    return out


def card(request: AccessRequest, viewer: Viewer, now: float) -> dict[str, Any]:
    view = request.as_dict(now)
    own = request.requested_by(viewer.identity)
    pending = view["state"] == "pending"
    if own:
        why_not = "This is your own request: another reviewer has to decide it."
    elif not request.reviewable_by(viewer.identity):
        who = ", ".join([*view["reviewers"]["groups"], *view["reviewers"]["users"]])
        why_not = f"Only its reviewers decide this request: {who}."
    else:
        why_not = ""
    already = any(v.reviewer == viewer.identity.username for v in request.votes)
    return {
        **view,
        "ci_url": ci_run_url(view["requester"]["claims"]),
        "diff": diff_lines(view["summary"]),
        "can_decide": pending and not own and not already and request.reviewable_by(viewer.identity),
        "why_not": why_not if pending else "",
        "own": own,
        "voted": already,
        "query_text": f"?{view['request']['query']}" if view["request"] and view["request"]["query"] else "",
    }


async def _inbox(service: ApprovalService, viewer: Viewer) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    now = service.clock()
    roles = set(viewer.roles)
    pending = [
        r
        for r in await service.list(["pending"], PENDING_LIMIT)
        if r.effective_state(now) == "pending" and visible(r, viewer.identity, roles)
    ]
    recent = [
        r
        for r in await service.list(["approved", "denied", "revoked", "expired"], RECENT_LIMIT)
        if visible(r, viewer.identity, roles)
    ]
    cards = [card(r, viewer, now) for r in pending]
    decided = [r.as_dict(now) for r in recent]
    version = hashlib.sha256(
        orjson.dumps(
            [[c["id"], c["state"], len(c["approvals"])] for c in cards] + [[d["id"], d["state"]] for d in decided]
        )
    ).hexdigest()[:16]
    return cards, decided, version


def _service(request: web.Request) -> ApprovalService:
    service = request.config_dict[UI].gateway.approvals
    if service is None:
        raise Refused(
            503, "approvals are not running on this kubegate yet; reload in a moment", reason="ServiceUnavailable"
        )
    return service


def _failure(request: web.Request, viewer: Viewer, exc: Exception) -> web.Response:
    if isinstance(exc, Refused):
        return error_page(request, exc.code, "Not done", exc.message, viewer)
    return error_page(
        request,
        503,
        "Store unavailable",
        f"the approval store is unavailable: {describe(exc)}; try again or contact the kubegate operator",
        viewer,
    )


@page()
async def inbox(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    try:
        service = _service(request)
        cards, decided, version = await _inbox(service, viewer)
        notice = None
        done_id = request.query.get("decided")
        if done_id:
            found = await service.get(done_id)
            if found is not None and visible(found, viewer.identity, set(viewer.roles)):
                notice = found.as_dict(service.clock())
    except (Refused, StoreError, SQLAlchemyError, OSError) as exc:
        return _failure(request, viewer, exc)
    return render(
        request,
        "approvals.html",
        viewer=viewer,
        title="Approvals",
        cards=cards,
        decided=decided,
        version=version,
        poll=POLL_SECONDS,
        notice=notice,
    )


@page()
async def pending_fragment(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The inbox's live part; 204 (htmx keeps what it shows, typing included) when nothing changed."""
    try:
        cards, decided, version = await _inbox(_service(request), viewer)
    except (Refused, StoreError, SQLAlchemyError, OSError):
        return web.Response(status=204)
    if request.query.get("v") == version:
        return web.Response(status=204, headers={"Cache-Control": "no-store"})
    return render(
        request, "_inbox.html", viewer=viewer, cards=cards, decided=decided, version=version, poll=POLL_SECONDS
    )


@page(form=True)
async def decide(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    request_id = request.match_info["id"]
    form = await request.post()
    decision, reason = str(form.get("decision", "")), str(form.get("reason", "")).strip()
    if decision not in ("approve", "deny") or len(reason) > 2000:
        return error_page(
            request, 400, "Not done", "choose Approve or Deny, with a reason of at most 2000 characters", viewer
        )
    try:
        service = _service(request)
        found = await service.get(request_id)
        if found is None or not visible(found, viewer.identity, set(viewer.roles)):
            return error_page(
                request,
                404,
                "Not found",
                f"access request {request_id} does not exist or is not one you may see",
                viewer,
            )
        if decision == "approve":
            await service.approve(request_id, viewer.identity, reason)
        else:
            await service.deny(request_id, viewer.identity, reason)
    except (Refused, StoreError, SQLAlchemyError, OSError) as exc:
        return _failure(request, viewer, exc)
    return see_other(f"/ui/approvals?decided={request_id}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/approvals", inbox)
    app.router.add_get("/approvals/pending", pending_fragment)
    app.router.add_post("/approvals/{id}/decide", decide)
