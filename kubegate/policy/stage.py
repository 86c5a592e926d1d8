"""The pipeline stage that decides each request before anything reaches a cluster."""

from __future__ import annotations

from kubegate.kube.status import Refused
from kubegate.policy.engine import PolicyEngine
from kubegate.proxy.flow import Flow, Stage


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
        if flow.object_error and self.engine.needs_object:
            raise Refused(415, f"{flow.object_error}; kubegate's policy reads request bodies, so it cannot "
                          "let this one through", reason="UnsupportedMediaType", kind="policy")
        decision = self.engine.decide(flow.identity, info, flow.connection.name, flow.object)
        flow.decision = decision
        if decision.action == "deny":
            raise Refused(403, decision.message, reason="Forbidden",
                          details={"kind": info.resource, "name": info.name}, kind="policy")
