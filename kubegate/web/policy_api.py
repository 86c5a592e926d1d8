"""Admin API for the policy: the loaded rules, and "explain" — who, what, where -> which rules match."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from kubegate.config import Config
from kubegate.kube.status import Refused
from kubegate.policy.engine import PolicyEngine
from kubegate.policy.explain import ExplainError, identity_for, request_from_flags, request_from_kubectl
from kubegate.web.auth import Authorize

READERS = {"auditor", "admin", "reviewer"}


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Refused(400, f"{key} must be a list of strings", reason="BadRequest")
    return value


def explain_body(engine: PolicyEngine, config: Config, body: dict[str, Any]) -> dict[str, Any]:
    """The decision for the request a JSON body describes, with every rule that matched or not."""
    claims = body.get("claims") or {}
    if not isinstance(claims, dict):
        raise Refused(400, "claims must be an object of strings", reason="BadRequest")
    identity = identity_for(
        config,
        str(body.get("sub", "")),
        body.get("user"),
        str(body.get("issuer", "")),
        _strings(body, "groups"),
        {str(k): str(v) for k, v in claims.items()},
    )
    names = [c.name for c in config.connections]
    connection = str(body.get("connection") or (names[0] if len(names) == 1 else ""))
    try:
        if body.get("kubectl"):
            info, obj = request_from_kubectl(_strings(body, "kubectl"))
        elif isinstance(body.get("request"), dict):
            r = body["request"]
            info = request_from_flags(
                str(r.get("verb", "")),
                str(r.get("resource", "")),
                str(r.get("subresource", "")),
                r.get("api_group"),
                str(r.get("namespace", "")),
                str(r.get("name", "")),
                str(r.get("command", "")),
            )
            obj = None
        else:
            raise Refused(
                400,
                'describe the request: "kubectl": ["delete", "ns", "prod"] or "request": '
                '{"verb": ..., "resource": ..., "namespace": ..., "name": ...}',
                reason="BadRequest",
            )
    except ExplainError as exc:
        raise Refused(400, str(exc), reason="BadRequest") from exc
    obj = body.get("object", obj)
    decision = engine.explain(identity, info, connection, obj)
    return {
        "identity": identity.as_dict(),
        "connection": connection,
        "request": info.as_dict(),
        "decision": decision.as_dict(),
    }


def setup_routes(
    app: web.Application, engine: Callable[[], PolicyEngine], config: Config, authorize: Authorize
) -> None:
    async def rules(request: web.Request) -> web.Response:
        await authorize(request, READERS)
        policy = engine()
        return _json(
            {
                "status": policy.status(),
                "rules": [r.model_dump(mode="json", exclude_defaults=True) for r in policy.rules],
            }
        )

    async def explain(request: web.Request) -> web.Response:
        await authorize(request, READERS)
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError as exc:
            raise Refused(400, "the body must be a JSON object", reason="BadRequest") from exc
        if not isinstance(body, dict):
            raise Refused(400, "the body must be a JSON object", reason="BadRequest")
        return _json(explain_body(engine(), config, body))

    app.router.add_get("/api/v1/policy", rules)
    app.router.add_post("/api/v1/policy/explain", explain)
