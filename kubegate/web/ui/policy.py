"""The loaded policy, read-only, and the "explain" form: who, what, where -> which rules match and
the decision (the same answer as `kubegate policy explain` and POST /api/v1/policy/explain)."""

from __future__ import annotations

import shlex
from typing import Any

import yaml
from aiohttp import web

from kubegate.kube.status import Refused
from kubegate.web.policy_api import explain_body
from kubegate.web.ui.pages import POLICY_READERS, UI, Viewer, page, render

EXPLAIN_FIELDS = ("sub", "issuer", "groups", "connection", "kubectl", "verb", "resource", "namespace", "name")


def rule_view(rule: Any) -> dict[str, Any]:
    data = rule.model_dump(mode="json", exclude_defaults=True)
    details = {k: v for k, v in data.items() if k not in ("name", "action", "description", "message")}
    return {
        "name": rule.name,
        "action": rule.action,
        "description": rule.description,
        "message": rule.message,
        "details": yaml.safe_dump(details, sort_keys=False, default_flow_style=False).strip() if details else "",
    }


def explain_request(query: dict[str, str]) -> dict[str, Any]:
    """The explain API's body for the form's fields: a kubectl command line, or verb and resource."""
    body: dict[str, Any] = {
        "sub": query.get("sub", "").strip(),
        "issuer": query.get("issuer", ""),
        "groups": [g.strip() for g in query.get("groups", "").split(",") if g.strip()],
        "connection": query.get("connection", ""),
    }
    command = query.get("kubectl", "").strip()
    if command:
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise Refused(400, f"the kubectl command line cannot be read: {exc}", reason="BadRequest") from exc
        body["kubectl"] = argv[1:] if argv and argv[0] == "kubectl" else argv
    else:
        body["request"] = {k: query.get(k, "").strip() for k in ("verb", "resource", "namespace", "name")}
    return body


@page(POLICY_READERS)
async def policy_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    state = request.config_dict[UI]
    engine = state.gateway.policy
    query = {k: request.query.get(k, "") for k in EXPLAIN_FIELDS}
    issuers = [i.url for i in state.config.identity.issuers]
    query["issuer"] = query["issuer"] if query["issuer"] in issuers else (issuers[0] if issuers else "")
    result, error = None, ""
    if "explain" in request.query:
        try:
            if not query["sub"]:
                raise Refused(400, "say who: a user (the token's subject)", reason="BadRequest")
            result = explain_body(engine, state.config, explain_request(query))
        except Refused as exc:
            error = exc.message
    return render(
        request,
        "policy.html",
        viewer=viewer,
        title="Policy",
        status_info=engine.status(),
        rules=[rule_view(r) for r in engine.rules],
        query=query,
        issuers=issuers,
        connections=[c.name for c in state.config.connections],
        result=result,
        error=error,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/policy", policy_page)
