"""The approval service: asks, waits, decides and uses grants, and records every step.

One instance per gateway process, shared by the pipeline stage and the admin API. What must agree
across processes lives in the store (requests, votes, grants, outbox); what is per process is only
who is waiting here (DecisionSignals).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.model import (
    AccessRequest,
    Grant,
    NewRequest,
    RuleReviewers,
    Scope,
    merge_rules,
)
from kubegate.approvals.notify import Notifier
from kubegate.approvals.repository import ApprovalRepository
from kubegate.approvals.signals import DecisionSignals
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import RequestInfo
from kubegate.kube.status import Refused
from kubegate.policy.decision import Decision
from kubegate.policy.engine import PolicyEngine
from kubegate.policy.model import RESOURCE_VERBS
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store, StoreError

log = logging.getLogger(__name__)
QUIET_EVENTS = frozenset({"vote"})
"""Changes that wake no one and notify no webhook (a vote short of min_approvals)."""


def review_rules(decision: Decision) -> tuple[RuleReviewers, ...]:
    """Each review rule that matched, with its own reviewers: every one must be satisfied."""
    return merge_rules(
        [RuleReviewers.from_match(m) for m in decision.matches if m.action == "review" and m.reviewers is not None]
    )


class ApprovalService:
    def __init__(
        self,
        store: Store,
        recorder: Recorder | None,
        policy: PolicyEngine,
        config: ApprovalsConfig,
        *,
        connections: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        signals: DecisionSignals | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.policy = policy
        self.config = config
        self.connections = connections
        self.clock = clock
        self.repo = ApprovalRepository(store)
        self.signals = signals or DecisionSignals(store, poll_interval=config.poll_interval)
        self.notifier = notifier or Notifier(store, config, clock=clock)
        self.observer: Callable[[AccessRequest], None] | None = None
        """Told of each request created and each decision made here (kubegate.metrics counts them)."""

    async def start(self) -> None:
        await self.signals.start()
        await self.notifier.start()

    async def close(self) -> None:
        await self.signals.close()
        await self.notifier.close()

    # -- policy -----------------------------------------------------------------------------------

    def timeout_for(self, rules: Sequence[RuleReviewers]) -> float:
        """The shortest timeout among the rules; a rule that sets none gets approvals.default_timeout."""
        by_name = {r.name: r for r in reversed(self.policy.rules)}
        return self.config.timeout_for(by_name.get(rule.rule) for rule in rules)

    def is_reviewer(self, identity: Identity) -> bool:
        """Named as a reviewer (group or user) by any policy rule: may list and decide what it reviews."""
        return any(
            RuleReviewers(rule.name, tuple(rule.reviewers.groups), tuple(rule.reviewers.users)).admits(
                identity.username, identity.groups
            )
            for rule in self.policy.rules
            if rule.reviewers is not None
        )

    # -- recording and announcing -------------------------------------------------------------------

    async def record(
        self,
        session_id: str | None,
        type: str,
        data: dict[str, Any],
        *,
        durable: bool = True,
        outcome: str | None = None,
    ) -> None:
        if self.recorder is None:
            return
        try:
            await self.recorder.record_event(session_id, type, data, durable=durable, outcome=outcome)
        except StoreError as exc:
            if durable:
                raise
            log.error("cannot record %s event for session %s: %s", type, session_id, exc)

    async def _on_change(self, conn: AsyncConnection, request: AccessRequest, event: str) -> None:
        if event in QUIET_EVENTS:
            return
        await self.notifier.enqueue(conn, request, event)
        await DecisionSignals.publish(conn, request.id)

    def _announced(self, request: AccessRequest) -> None:
        self.signals.wake(request.id)
        self.notifier.wake()
        if self.observer is not None:
            self.observer(request)

    # -- the pipeline's side --------------------------------------------------------------------------

    async def use_grant(
        self,
        session_id: str | None,
        fp: str,
        identity: Identity,
        connection: str,
        info: RequestInfo,
        rules: Sequence[str],
        flow_id: str,
    ) -> Grant | None:
        """A single-use approval of exactly this request, else a scope grant covering it; records the use."""
        now = self.clock()
        grant = await self.repo.claim_once(fp, identity.username, rules, now)
        if grant is None:
            grant = await self.repo.use_scope(identity.username, connection, info, rules, now)
        if grant is not None:
            await self.record(
                session_id,
                "grant_used",
                {
                    "flow": flow_id,
                    "request": grant.request_id,
                    "grant": grant.kind,
                    "uses": grant.uses + 1,
                    "rules": list(rules),
                    "info": info.as_dict(),
                },
            )
        return grant

    async def release(self, session_id: str | None, grant: Grant, flow_id: str, why: str) -> None:
        await self.repo.release_once(grant.request_id)
        await self.record(
            session_id, "grant_released", {"flow": flow_id, "request": grant.request_id, "why": why}, durable=False
        )

    async def pending_for(self, fp: str) -> AccessRequest | None:
        return await self.repo.pending_for(fp)

    async def ask(self, new: NewRequest, flow_id: str = "") -> tuple[AccessRequest, bool]:
        """Create the access request (or join the identical pending one) and record it first."""
        request, created = await self.repo.create_or_join(new, self.clock(), self._on_change)
        if created:
            self._announced(request)
        await self.record(
            new.session_id,
            "access_request",
            {
                "flow": flow_id,
                "request": request.id,
                "requester": new.identity.username,  # a scope request has no session to say who asked
                "action": "created" if created else "joined",
                "mode": request.mode,
                "fingerprint": request.fingerprint,
                "rules": [r.as_dict() for r in request.rules],
                "expires_at": request.expires_at,
                "info": dict(request.info or {}),
                "scope": request.scope.as_dict() if request.scope else None,
                "reason": request.reason,
            },
            outcome="pending" if request.mode == "wait" else None,
        )  # the session shows it held, not "-"
        return request, created

    async def wait(self, request_id: str) -> AccessRequest:
        """Until the request is decided or expires (then it is marked expired); never longer."""
        while True:
            event = self.signals.event(request_id)
            request = await self.repo.get(request_id)
            if request is None:
                raise Refused(404, f"access request {request_id} disappeared while waiting", reason="NotFound")
            if request.state != "pending":
                return request
            left = request.expires_at - self.clock()
            if left <= 0:
                expired = await self.repo.expire(request_id, self.clock(), self._on_change)
                assert expired is not None
                if expired.state == "expired":
                    self._announced(expired)
                    await self.record(expired.session_id, "request_expired", {"request": request_id}, durable=False)
                return expired
            await self.signals.wait(event, left)

    # -- the reviewers' side --------------------------------------------------------------------------

    async def get(self, request_id: str) -> AccessRequest | None:
        return await self.repo.get(request_id)

    async def list(self, states: Sequence[str], limit: int) -> list[AccessRequest]:
        return await self.repo.list(states, limit)

    async def pending_counts(self) -> dict[str, int]:
        return await self.repo.pending_counts(self.clock())

    async def approve(self, request_id: str, reviewer: Identity, comment: str = "") -> AccessRequest:
        request = await self.repo.approve(
            request_id, reviewer, comment, self.clock(), self.config.grant_lifetime, self._on_change
        )
        complete = request.state == "approved"
        if complete:
            self._announced(request)
        await self.record(
            request.session_id,
            "approval",
            {
                "request": request_id,
                "reviewer": reviewer.username,
                "groups": list(reviewer.groups),
                "comment": comment,
                "complete": complete,
                "grant_expires_at": request.grant.expires_at if request.grant else None,
            },
        )
        return request

    async def deny(self, request_id: str, reviewer: Identity, reason: str) -> AccessRequest:
        if not reason.strip():
            raise Refused(400, "a denial needs a reason (--reason): the requester sees it", reason="BadRequest")
        request = await self.repo.deny(request_id, reviewer, reason, self.clock(), self._on_change)
        self._announced(request)
        await self.record(
            request.session_id, "denial", {"request": request_id, "reviewer": reviewer.username, "reason": reason}
        )
        return request

    async def revoke(self, request_id: str, who: Identity, reason: str, *, admin: bool) -> AccessRequest:
        request = await self.repo.revoke(request_id, who, reason, self.clock(), admin=admin, on_change=self._on_change)
        self._announced(request)
        await self.record(
            request.session_id, "grant_revoked", {"request": request_id, "by": who.username, "reason": reason}
        )
        return request

    async def ask_scope(
        self, identity: Identity, connection: str, scope: Scope, reason: str, server: str
    ) -> AccessRequest:
        """A time-boxed grant asked for ahead of time; its reviewers are those of the review rules the
        scope would meet. A scope never widens what policy denies or asks for what it already allows."""
        if connection not in self.connections:
            raise Refused(
                404,
                f"kubegate has no connection named {connection!r}; registered connections: "
                f"{', '.join(sorted(self.connections)) or 'none'}",
                reason="NotFound",
            )
        unknown = sorted(set(scope.verbs) - RESOURCE_VERBS)
        if unknown or not scope.verbs or not scope.resources:
            raise Refused(
                400,
                "a scope needs --verbs from "
                + ", ".join(sorted(RESOURCE_VERBS))
                + " and at least one resource"
                + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
                reason="BadRequest",
            )
        if not 0 < scope.duration <= self.config.max_scope_duration:
            raise Refused(
                400, f"--duration must be more than 0 and at most {self.config.max_scope_duration}", reason="BadRequest"
            )
        if not reason.strip():
            raise Refused(400, "a scope request needs a --reason the reviewers can judge", reason="BadRequest")
        rules: list[RuleReviewers] = []
        for verb in scope.verbs:
            for ref in scope.resources:
                info = RequestInfo(
                    verb=verb,
                    path="",
                    is_resource_request=True,
                    api_prefix="apis" if ref.group else "api",
                    api_group=ref.group,
                    namespace=scope.namespace,
                    resource=ref.resource,
                    subresource=ref.subresource,
                )
                decision = self.policy.decide(identity, info, connection)
                if decision.action == "deny":
                    raise Refused(
                        403,
                        f"the policy denies {verb} {ref}, so no approval can grant it: {decision.message}",
                        reason="Forbidden",
                    )
                rules.extend(review_rules(decision))
        if not rules:
            raise Refused(
                409,
                f"the policy already allows {scope.describe()} on {connection}: no approval is needed",
                reason="Conflict",
            )
        merged = merge_rules(rules)
        request, _ = await self.ask(
            NewRequest(
                kind="scope",
                identity=identity,
                connection=connection,
                rules=merged,
                mode="async",
                expires_in=self.timeout_for(merged),
                scope=scope,
                reason=reason,
                server=server,
                summary=scope.describe(),
            )
        )
        return request
