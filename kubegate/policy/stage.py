"""The pipeline stage that decides each request before anything reaches a cluster."""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from kubegate.kube.status import Refused
from kubegate.policy.engine import PolicyEngine
from kubegate.proxy.flow import Flow, Stage

BODY_VERBS = frozenset({"create", "update", "patch"})


class UnreadableBody(ValueError):
    """A body the policy must read (a condition looks at `object`) but cannot."""


def parse_body(body: bytes, content_type: str) -> Any:
    """The request object from a JSON or YAML body (merge, strategic-merge, JSON and apply patches too)."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media == "application/json" or media.endswith("+json"):
            return orjson.loads(body)
        if media in ("application/yaml", "application/x-yaml", "text/yaml") or media.endswith("+yaml"):
            return yaml.safe_load(body)
    except (orjson.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UnreadableBody(f"the request body is not valid {media}: {exc}") from exc
    raise UnreadableBody(f"kubegate's policy reads request bodies and cannot read {media or 'an untyped body'}; "
                         "send application/json or YAML (kubectl does by default)")


class PolicyStage(Stage):
    """Sets flow.decision. Deny raises a 403 Status naming the rule; review is left to the approval stage."""

    name = "policy"

    def __init__(self, engine: PolicyEngine) -> None:
        self.engine = engine

    async def on_request(self, flow: Flow) -> None:
        if flow.identity is None or flow.info is None:
            raise Refused(500, "kubegate could not decide this request: it reached policy without an identity or "
                          "request info. This is a kubegate bug; please report it", kind="policy")
        info = flow.info
        obj = None
        if info.verb in BODY_VERBS and flow.body and self.engine.needs_object:
            try:
                obj = parse_body(flow.body, flow.headers.get("Content-Type", ""))
            except UnreadableBody as exc:
                raise Refused(415, str(exc), reason="UnsupportedMediaType", kind="policy") from exc
        decision = self.engine.decide(flow.identity, info, flow.connection.name, obj)
        flow.decision = decision
        if decision.action == "deny":
            raise Refused(403, decision.message, reason="Forbidden",
                          details={"kind": info.resource, "name": info.name}, kind="policy")
