"""The approval step of the pipeline: a `review` decision never reaches the cluster unapproved.

A request the policy sends to review passes only with a grant: the single use of an approval of
exactly this request (same identity, connection, verb, path, query and body digest), or a scope
grant that covers it, approved under every review rule the request meets now. Otherwise it becomes
an access request: in `wait` mode kubectl is held until a reviewer decides or the request expires;
in `async` mode it is refused at once with the command a reviewer runs.
"""

from __future__ import annotations

from collections.abc import Callable

from kubegate.approvals.model import AccessRequest, Grant, NewRequest, body_digest, fingerprint
from kubegate.approvals.service import ApprovalService, review_rules
from kubegate.approvals.summary import summarize
from kubegate.flow import Flow, Stage
from kubegate.kube.status import Refused
from kubegate.masking.masker import Masker
from kubegate.masking.scrub import scrubbed
from kubegate.store.engine import StoreError


def _client_gone(flow: Flow) -> bool:
    """kubectl gave up while held: never forward (or spend an approval) for a client that left."""
    transport = flow.request.transport
    return transport is None or transport.is_closing()


def _who(request: AccessRequest) -> str:
    r = request.reviewers
    return ", ".join([*(f"group {g}" for g in r["groups"]), *(f"user {u}" for u in r["users"])])


def _lifetime(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


class ApprovalStage(Stage):
    name = "approval"

    def __init__(self, service: ApprovalService, masker: Masker, server: Callable[[], str]) -> None:
        """`server`: the gateway's base URL for approve commands, from config (never the request's Host)."""
        self.service = service
        self.masker = masker
        self.server = server

    async def on_request(self, flow: Flow) -> None:
        decision = flow.decision
        if decision is None or decision.action != "review":
            return
        if flow.identity is None or flow.info is None:
            raise Refused(
                500,
                "kubegate could not hold this request for approval: it has no identity or request "
                "info. This is a kubegate bug; please report it",
            )
        try:
            await self._decide(flow)
        except StoreError as exc:
            raise Refused(
                503,
                f"this request needs approval and kubegate cannot reach its store: {exc}; try "
                "again or contact the kubegate operator",
                reason="ServiceUnavailable",
            ) from exc

    async def _decide(self, flow: Flow) -> None:
        assert flow.identity is not None and flow.info is not None and flow.decision is not None
        svc, identity, info = self.service, flow.identity, flow.info
        rules = review_rules(flow.decision)
        names = [r.rule for r in rules]
        digest = body_digest(flow.body)
        fp = fingerprint(
            identity.username, flow.connection.name, info, flow.method, flow.raw_path, flow.query_string, digest
        )
        session_id = flow.session_id or None
        grant = await svc.use_grant(session_id, fp, identity, flow.connection.name, info, names, flow.id)
        if grant is not None:
            await self._passed(flow, grant)
            return
        pending = await svc.pending_for(fp)
        new = NewRequest(
            kind="request",
            identity=identity,
            connection=flow.connection.name,
            rules=rules,
            mode=flow.decision.reviewers.mode if flow.decision.reviewers else "wait",
            expires_in=svc.timeout_for(rules),
            fingerprint=fp,
            method=flow.method,
            path=scrubbed(flow.raw_path, self.masker.scrub, "path"),
            query=scrubbed(flow.query_string, self.masker.scrub, "query"),
            info=scrubbed(info.as_dict(), self.masker.scrub),
            content_type=flow.headers.get("Content-Type", ""),
            body_sha256=digest,
            body_bytes=len(flow.body),
            kubectl_command=self.masker.scrub(flow.kubectl_command),
            summary="" if pending else await summarize(flow, self.masker),
            session_id=session_id,
            server=self.server(),
        )
        request, _ = await svc.ask(new, flow.id)
        if request.mode == "async":
            raise Refused(
                403,
                f"kubegate holds this request for approval: {request.describe()}; it needs "
                f"approval by {_who(request)} (policy rule "
                f"{', '.join(names)}). Access request {request.id} is waiting; a reviewer approves it with: "
                f"{request.approve_command(new.server)} -- then run the same command again (the approval "
                f"lets the identical request through once within "
                f"{_lifetime(svc.config.grant_lifetime)})",
                reason="Forbidden",
                details={"name": request.id, "kind": "accessrequest"},
            )
        decided = await svc.wait(request.id)
        if decided.state == "approved" and _client_gone(flow):
            raise Refused(
                400,
                f"kubegate: access request {request.id} was approved after the client disconnected; "
                "nothing was forwarded and the approval is kept for the same request run again",
                reason="BadRequest",
            )
        if decided.state == "approved":
            grant = await svc.use_grant(session_id, fp, identity, flow.connection.name, info, names, flow.id)
            if grant is not None:
                await self._passed(flow, grant)
                return
            raise Refused(
                403,
                f"kubegate refused this request: access request {request.id} was approved, but its "
                "single use was taken by an "
                "identical request; run the command again to ask anew",
                reason="Forbidden",
            )
        raise Refused(
            403,
            _refusal(decided),
            reason="Forbidden",
            details={"name": request.id, "kind": "accessrequest"},
        )

    async def _passed(self, flow: Flow, grant: Grant) -> None:
        """Let it through, telling the caller (a Warning kubectl prints) whose approval let it."""
        flow.grant = grant
        request = await self.service.get(grant.request_id)
        by = (
            ", ".join(v.reviewer for v in request.votes)
            if request is not None and request.votes
            else (request.decided_by if request is not None else "")
        )
        flow.warnings.append(
            f"kubegate let this request through: access request {grant.request_id} was approved"
            + (f" by {by}" if by else "")
        )

    async def on_end(self, flow: Flow) -> None:
        """An upgrade that never opened (kubectl then retries exec over SPDY) did not use its approval."""
        grant = flow.grant
        if grant is None or grant.kind != "once" or not flow.is_upgrade or flow.response_status == 101:
            return
        svc = self.service
        session_id = flow.session_id or None
        await svc.release(session_id, grant, flow.id, f"the upgrade was answered {flow.response_status}")

    async def close(self) -> None:
        await self.service.close()


def _refusal(request: AccessRequest) -> str:
    """Why kubegate refused a held request: the reviewer's decision, or that nobody decided in time."""
    if request.state == "denied":
        return (
            f"kubegate refused this request: access request {request.id} was denied by {request.decided_by}: "
            f"{request.decision_reason}"
        )
    if request.state == "expired":
        return (
            f"kubegate refused this request: access request {request.id} was not approved in time (it "
            f"expired); run the command again to ask anew, and ask {_who(request)} to review it"
        )
    return (
        f"kubegate refused this request: access request {request.id} was {request.state}"
        + (f" by {request.decided_by}" if request.decided_by else "")
        + (f": {request.decision_reason}" if request.decision_reason else "")
    )
