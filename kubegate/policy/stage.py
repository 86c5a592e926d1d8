"""The pipeline stage that decides each request before anything reaches a cluster.

A write is judged on the object the cluster would store, when that can change the verdict: a rule that
could match reads the object, the verdict is a review (reviewers see that object), or kubegate cannot read
the body itself (protobuf). The object comes from a dry run of the same request as the caller (see
upstream/dryrun.py), made only after what can be decided without it has not already denied the request.
Masked values a write carries back are restored first (masking/writeback.py), so the dry run, the verdict
and the forwarded write all see the stored values, and the response is masked as the restored values were.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kubegate.flow import Flow, Stage
from kubegate.kube.status import Refused
from kubegate.policy.decision import Decision
from kubegate.policy.engine import PolicyEngine

if TYPE_CHECKING:
    from kubegate.masking.writeback import Restoration

StoredObject = Callable[[Flow, Decision], Awaitable[Any]]
WriteBack = Callable[[Flow, Decision], Awaitable["Restoration | None"]]
WRITES = frozenset({"create", "update", "patch"})


class PolicyStage(Stage):
    """Sets flow.decision. Deny raises a 403 Status naming the rule; review is left to the approval stage."""

    name = "policy"

    def __init__(
        self, engine: PolicyEngine, stored_object: StoredObject | None = None, write_back: WriteBack | None = None
    ) -> None:
        self.engine = engine
        self.stored_object = stored_object
        self.write_back = write_back

    async def on_request(self, flow: Flow) -> None:
        if flow.identity is None or flow.info is None:
            raise Refused(
                500,
                "kubegate could not decide this request: it reached policy without an identity or "
                "request info. This is a kubegate bug; please report it",
            )
        info, identity, connection = flow.info, flow.identity, flow.connection.name
        writes = info.verb in WRITES and bool(flow.body)
        early = self.engine.before_object(identity, info, connection) if writes else None
        decision = early or self.engine.decide(identity, info, connection, flow.sent)
        if writes and decision.action != "deny":
            restored = await self.write_back(flow, decision) if self.write_back is not None else None
            if (
                early is not None
                or decision.action == "review"
                or flow.sent is None
                or (restored is not None and restored.values)
            ):
                if self.stored_object is None:
                    raise Refused(
                        500,
                        "kubegate's policy needs the object this write would store, and this "
                        "gateway cannot ask the cluster for it. This is a kubegate bug; nothing was "
                        "forwarded",
                    )
                flow.stored = await self.stored_object(flow, decision)
                decision = self.engine.decide(identity, info, connection, flow.stored)
            if restored is not None:
                restored.check(flow.stored)
                decision = restored.decision(decision)
        flow.decision = decision
        if decision.action == "deny":
            raise Refused(
                403,
                decision.message,
                reason="Forbidden",
                details={"kind": info.resource, "name": info.name},
            )
