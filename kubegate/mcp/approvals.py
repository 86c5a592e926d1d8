"""Agents cannot sit in a held HTTP request: a call a rule sends to review answers at once with a pending result.

A `wait`-mode rule holds the loopback request inside the approval stage; the tool call finds the access
request that stage created (same caller, method and path, created since the call began) and returns it,
which ends the held request. The access request stays pending; once approved, the identical call runs
through once, exactly as kubectl's retry does. An `async`-mode rule already answers 403 with the request id.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from kubegate.approvals.model import AccessRequest
from kubegate.approvals.service import ApprovalService
from kubegate.identity.model import Identity
from kubegate.mcp.recording import note_pending

MAX_POLL_SECONDS = 2.0


RETRY = (
    "nothing was done yet: kubegate holds this call until a reviewer decides. Call approval_status with "
    "request_id {id}; once it is approved, make the identical tool call again (the approval lets it through once)"
)
SCOPE = (
    "call approval_status with request_id {id}; once it is approved, calls within the scope go through until "
    "the grant expires"
)


def pending_result(request: AccessRequest, server: str, next_step: str = RETRY) -> dict[str, Any]:
    note_pending(request.id)  # the tool call's recorded result says it waits for this request
    return {
        "pending_approval": {
            "request_id": request.id,
            "asked": request.describe(),
            "who_can_approve": [r.as_dict() for r in request.rules],
            "expires_at": datetime.fromtimestamp(request.expires_at, UTC).isoformat(timespec="seconds"),
            "approve_command": request.approve_command(server),
            "next": next_step.format(id=request.id),
        }
    }


def status_result(request: AccessRequest) -> dict[str, Any]:
    state = request.effective_state(time.time())
    nexts = {
        "pending": "still waiting for a reviewer; check again later",
        "approved": "make the identical tool call again now: the approval lets it through once",
        "denied": "the request was refused; do not retry it, ask a human what to do instead",
        "expired": "nobody decided in time; make the call again to ask anew",
    }
    return {
        "request_id": request.id,
        "state": state,
        "asked": request.describe(),
        "decided_by": request.decided_by,
        "reason": request.decision_reason,
        "next": nexts.get(state, "make the call again to ask anew"),
    }


async def held(
    service: ApprovalService,
    identity: Identity,
    method: str,
    path: str,
    since: float,
    call: asyncio.Task[Any],
    poll: float,
) -> AccessRequest | None:
    """The access request holding `call`, once the approval stage made it; None when the call ends first.
    A quick call never touches the store; a slow one (a big list, an exec) looks less and less often."""
    while not call.done():
        await asyncio.wait({call}, timeout=poll)
        if call.done():
            return None
        poll = min(poll * 2, MAX_POLL_SECONDS)
        for request in await service.list(["pending"], 100):
            if (
                request.username == identity.username
                and request.method == method
                and request.path == path
                and request.created_at >= since - 1
            ):
                return request
    return None
