"""What a write would store, asked of the cluster itself: the same request as the same caller, dry run.

kube-apiserver decodes the body (JSON with sigs.k8s.io/json's merging of repeated keys, YAML, protobuf of
any kind and version, CBOR), applies the patch of whichever type to the stored object, defaults it and
runs admission, then answers with the object it would store, in JSON, and stores nothing (`dryRun=All`).
Policy, approvals and recording judge that object: no decoder or patch logic of kubegate's own can
disagree with the cluster about it. The caller gets the role the write would get first (RoleGrants),
because the dry run is authorized as the caller. A refusal from the cluster is the caller's answer, as the
real write would have been refused the same way; nothing is forwarded then.
"""

from __future__ import annotations

from typing import Any

from kubegate.flow import Flow
from kubegate.kube.status import Refused
from kubegate.policy.decision import Decision
from kubegate.upstream.stage import RoleGrants

DRY_RUN = "dryRun=All"
_NOT_SENT = frozenset({"accept", "accept-encoding", "content-type"})


class StoredObjects:
    """Resolves the object a write would store, for the policy stage."""

    def __init__(self, grants: RoleGrants) -> None:
        self.grants = grants

    async def __call__(self, flow: Flow, decision: Decision) -> dict[str, Any]:
        await self.grants.ensure(flow, decision)
        query = f"{flow.query_string}&{DRY_RUN}" if flow.query_string else DRY_RUN
        headers = [(k, v) for k, v in flow.headers.items() if k.lower() not in _NOT_SENT]
        status, answer = await flow.connection.client.call(
            flow.method,
            flow.raw_path,
            query,
            identity=flow.identity,
            body=flow.body,
            content_type=flow.headers.get("Content-Type", "application/json"),
            headers=headers,
        )
        if 200 <= status < 300 and isinstance(answer, dict):
            return answer
        if 400 <= status < 500 and isinstance(answer, dict) and answer.get("kind") == "Status":
            raise Refused(
                status,
                str(answer.get("message", "")),
                reason=answer.get("reason"),
                details=answer.get("details"),
            )
        raise Refused(
            502,
            f"kubegate asked the API server of connection {flow.connection.name} what this write "
            f"would store (a dry run), and it answered {status} without an object; kubegate judges "
            "writes on that object, so nothing was forwarded. Try again, or contact the kubegate "
            "operator if it persists",
            reason="BadGateway",
        )
