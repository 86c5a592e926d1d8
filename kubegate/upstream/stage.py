"""The pipeline step nearest the cluster: give the caller the role its policy names, then forward.

It runs after policy, approval and the recorder's request event, so a binding is only ever made for a
request that was allowed (or approved) and durably recorded; a binding it cannot make refuses the request
(fail closed) rather than forwarding it without the role the policy meant. The one exception is a dry run
that policy asks for (upstream/dryrun.py): to learn what a write would store, the caller needs the role
the write would get, so `RoleGrants.ensure` is also called for that provisional decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kubegate.flow import Flow, Stage
from kubegate.kube.status import Refused
from kubegate.policy.decision import Decision
from kubegate.store.engine import StoreError
from kubegate.upstream.bindings import BindingError, Ensured, TemporaryBindings, binding_for, rfc3339
from kubegate.upstream.credentials import CredentialError

if TYPE_CHECKING:
    from kubegate.recording.recorder import Recorder

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SETTLE_DELAYS = (0, 0.02, 0.05, 0.1, 0.2, 0.4)


class RoleGrants:
    """Ensures the temporary RBAC binding a decision's role needs, and records each binding made or renewed
    as a `binding` event of the caller's session."""

    def __init__(self, bindings: Mapping[str, TemporaryBindings], recorder: Recorder | None = None) -> None:
        self.bindings = bindings
        self.recorder = recorder

    async def ensure(self, flow: Flow, decision: Decision | None) -> Ensured | None:
        identity, conn = flow.identity, flow.connection
        role = decision.role if decision is not None else None
        bindings = self.bindings.get(conn.name)
        if decision is None or not role or identity is None or bindings is None:
            return None
        namespace = flow.info.namespace if flow.info is not None else ""
        try:
            spec = binding_for(conn.kubernetes_user(identity), role, decision.role_scope or "namespace", namespace)
        except ValueError as exc:
            raise Refused(
                403, f"kubegate cannot grant the role of this request's policy rule: {exc}", reason="Forbidden"
            ) from exc
        if spec is None:
            return None
        session = flow.session_id or flow.id
        try:
            ensured = await bindings.ensure(spec, identity.username, session)
        except BindingError as exc:
            raise Refused(exc.code, exc.message, reason=exc.reason) from exc
        except CredentialError as exc:
            raise Refused(
                502,
                f"kubegate could not get its own credentials for connection {conn.name}: {exc}",
                reason="BadGateway",
            ) from exc
        if ensured.action in ("created", "renewed"):
            await self._record(flow, session, ensured)
        if ensured.action == "created":
            await self._effective(flow)
        return ensured

    async def _effective(self, flow: Flow) -> None:
        """Wait (briefly) until the cluster's authorizer sees a binding just made: kube-apiserver reads
        bindings through an informer, so a request sent right after the create can still be refused. Asked
        as the caller with a SelfSubjectAccessReview, which every authenticated user may make."""
        info = flow.info
        if info is None or not info.is_resource_request:
            return
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "verb": info.verb,
                    "group": info.api_group,
                    "resource": info.resource,
                    "subresource": info.subresource,
                    "namespace": info.namespace,
                    "name": info.name,
                }
            },
        }
        for delay in SETTLE_DELAYS:
            await asyncio.sleep(delay)
            try:
                status, answer = await flow.connection.client.call(
                    "POST", SSAR_PATH, identity=flow.identity, body=review
                )
            except Refused:
                return
            if status != 201 or not isinstance(answer, dict) or (answer.get("status") or {}).get("allowed"):
                return  # allowed, or the cluster cannot say: the request itself will tell

    async def _record(self, flow: Flow, session: str, ensured: Ensured) -> None:
        if self.recorder is None:
            return
        spec = ensured.spec
        try:
            await self.recorder.record_event(
                session,
                "binding",
                {
                    "flow": flow.id,
                    "action": ensured.action,
                    "kind": spec.kind,
                    "name": spec.name,
                    "namespace": spec.namespace,
                    "role_kind": spec.role_kind,
                    "role": spec.role,
                    "user": spec.user,
                    "expires_at": rfc3339(ensured.expires_at),
                },
                durable=False,
            )
        except StoreError:
            self.recorder.lost_events += 1


class UpstreamAccessStage(Stage):
    """Ensures the temporary RBAC binding of a decision's role before the request is forwarded."""

    name = "upstream-access"

    def __init__(self, grants: RoleGrants) -> None:
        self.grants = grants

    async def on_request(self, flow: Flow) -> None:
        await self.grants.ensure(flow, flow.decision)
