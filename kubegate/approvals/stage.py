"""The approval step of the pipeline: a `review` decision never reaches the cluster unapproved."""

from __future__ import annotations

from kubegate.kube.status import Refused
from kubegate.proxy.flow import Flow, Stage


class ReviewGate(Stage):
    """Refuses every request the policy sends to review, naming who could approve it.

    This is the fail-closed behaviour while no approval service is configured: nothing that
    needs a human's yes is ever forwarded without one.
    """

    name = "approval"

    async def on_request(self, flow: Flow) -> None:
        decision = flow.decision
        if decision is None or decision.action != "review":
            return
        reviewers = getattr(decision, "reviewers", None)
        who = ", ".join([*getattr(reviewers, "groups", ()), *getattr(reviewers, "users", ())]) or "a reviewer"
        rules = ", ".join(m.rule for m in decision.matches if m.action == "review")
        raise Refused(403, f"this request needs approval by {who} (policy rule {rules}), and approvals are not "
                      "enabled on this kubegate; ask the kubegate operator to enable them or to change the rule",
                      reason="Forbidden", kind="review")
