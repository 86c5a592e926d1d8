"""The approval stage: wait and async modes, single use, exact binding, collapse, and the recording."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import sqlalchemy as sa

from kubegate.approvals.service import ApprovalService
from kubegate.kube.status import Refused
from kubegate.store.tables import access_requests, events, sessions
from tests.approvals.builders import (
    AGENT,
    BOB,
    CAROL,
    DAVE,
    HOSTILE_HOST,
    RULES,
    Clock,
    approval_stage,
    cancel,
    engine,
    held,
    make_flow,
    pending_ids,
)


async def test_wait_mode_holds_until_approved_then_forwards(service: ApprovalService) -> None:
    stage = approval_stage(service)
    task, request_id = await held(stage, service)
    assert not task.done()
    approved = await service.approve(request_id, BOB, "looks right")
    assert approved.state == "approved"
    await asyncio.wait_for(task, 10)  # returns: the pipeline forwards


async def test_wait_mode_deny_refuses_with_the_reviewers_reason(service: ApprovalService) -> None:
    stage = approval_stage(service)
    task, request_id = await held(stage, service)
    await service.deny(request_id, BOB, "pr-42 is still in use by the release train")
    with pytest.raises(Refused) as refused:
        await asyncio.wait_for(task, 10)
    assert refused.value.code == 403
    assert refused.value.message == (
        f"kubegate refused this request: access request {request_id} was denied by "
        "idp#bob: pr-42 is still in use by the release train"
    )


async def test_wait_mode_times_out_with_a_403(service: ApprovalService, clock: Clock) -> None:
    stage = approval_stage(service)
    task, request_id = await held(stage, service)
    request = await service.get(request_id)
    assert request is not None and request.expires_at - request.created_at == 600  # approvals.default_timeout
    clock.now += 601
    service.signals.wake(request_id)
    with pytest.raises(Refused) as refused:
        await asyncio.wait_for(task, 10)
    assert "was not approved in time (it expired)" in refused.value.message
    expired = await service.get(request_id)
    assert expired is not None and expired.state == "expired"


async def test_async_mode_refuses_at_once_with_the_approve_command(service: ApprovalService) -> None:
    stage = approval_stage(service)
    with pytest.raises(Refused) as refused:
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))
    [request_id] = await pending_ids(service)
    message = refused.value.message
    assert refused.value.code == 403
    assert f"kubegate requests approve {request_id} --server https://gateway.example:8443" in message
    assert HOSTILE_HOST.split(":")[0] not in message  # the client's Host header names nothing kubegate hands out
    request = await service.get(request_id)
    assert request is not None and HOSTILE_HOST.split(":")[0] not in orjson.dumps(request.as_dict(0)).decode()
    assert "policy rule prod-reads-need-approval" in message and "group platform-oncall" in message
    request = await service.get(request_id)
    assert request is not None and request.expires_at - request.created_at == 3600  # the rule's own timeout


async def test_after_async_approval_the_identical_request_passes_once(service: ApprovalService) -> None:
    stage = approval_stage(service)
    with pytest.raises(Refused):
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))
    [request_id] = await pending_ids(service)
    await service.approve(request_id, BOB)
    flow = make_flow("GET", "/api/v1/namespaces/prod/pods")
    await stage.on_request(flow)
    assert flow.warnings == [f"kubegate let this request through: access request {request_id} was approved by idp#bob"]
    with pytest.raises(Refused) as again:
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))
    assert request_id not in again.value.message  # a new access request: the approval was used
    request = await service.get(request_id)
    assert request is not None and request.grant is not None and request.grant.uses == 1


async def test_the_grant_expires_with_its_lifetime(service: ApprovalService, clock: Clock) -> None:
    stage = approval_stage(service)
    with pytest.raises(Refused):
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))
    [request_id] = await pending_ids(service)
    await service.approve(request_id, BOB)
    clock.now += 15 * 60 + 1
    with pytest.raises(Refused):
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))


BODY = orjson.dumps({"propagationPolicy": "Background"})


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"path": "/api/v1/namespaces/prod-db"}, id="another-name"),
        pytest.param({"identity": DAVE}, id="another-identity"),
        pytest.param({"connection": "prod"}, id="another-connection"),
        pytest.param({"body": orjson.dumps({"propagationPolicy": "Orphan"})}, id="another-body"),
        pytest.param({"query": "dryRun=All"}, id="another-query"),
    ],
)
async def test_an_approval_covers_only_the_exact_request(service: ApprovalService, other: dict[str, object]) -> None:
    stage = approval_stage(service)
    waiting, request_id = await held(stage, service, body=BODY)
    await cancel(waiting)  # kubectl gave up; the request stays and is approved later
    await service.approve(request_id, BOB)
    variant, new_id = await held(stage, service, **{"body": BODY, **other})
    assert new_id != request_id  # the variant is a new access request, held for its own review
    await cancel(variant)
    await asyncio.wait_for(stage.on_request(make_flow(body=BODY)), 10)  # the exact request still has its one use


async def test_identical_requests_collapse_into_one(service: ApprovalService) -> None:
    stage = approval_stage(service)
    first, request_id = await held(stage, service, session="kubectl-1")
    second = asyncio.create_task(stage.on_request(make_flow(session="kubectl-2")))  # a retried CI job
    await _joined(service)
    assert await pending_ids(service) == [request_id]
    await service.approve(request_id, BOB)
    outcomes = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 10)
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert outcomes.count(None) == 1 and len(refused) == 1  # single use: one goes through, the other asks again
    assert "its single use was taken by an identical request" in refused[0].message


async def _joined(service: ApprovalService) -> None:
    """Until a second attempt has joined the pending request (its `joined` event is committed)."""
    while True:
        async with service.store.read() as conn:
            types = (await conn.execute(sa.select(events.c.data).where(events.c.type == "access_request"))).scalars()
            if any(orjson.loads(data)["action"] == "joined" for data in types):
                return
        await asyncio.sleep(0.01)


async def test_websocket_exec_and_its_spdy_fallback_are_one_request(service: ApprovalService) -> None:
    stage = approval_stage(service)
    path, query = "/api/v1/namespaces/dev/pods/web/exec", "command=sh&command=-c&command=id&stdout=true"
    for method in ("GET", "POST"):  # WebSocket, then SPDY
        with pytest.raises(Refused):
            await stage.on_request(make_flow(method, path, query, upgrade=True))
    [request_id] = await pending_ids(service)
    with pytest.raises(Refused) as not_security:
        await service.approve(request_id, BOB)
    assert "is not a reviewer" in not_security.value.message
    await service.approve(request_id, CAROL)
    ws = make_flow("GET", path, query, upgrade=True)
    await stage.on_request(ws)
    ws.response_status = 501  # the WebSocket handshake failed: kubectl falls back to SPDY
    await stage.on_end(ws)
    spdy = make_flow("POST", path, query, upgrade=True)
    await stage.on_request(spdy)
    spdy.response_status = 101
    await stage.on_end(spdy)
    with pytest.raises(Refused):
        await stage.on_request(make_flow("POST", path, query, upgrade=True))


async def test_a_grant_needs_every_review_rule_the_request_meets_now(service: ApprovalService) -> None:
    stage = approval_stage(service)
    with pytest.raises(Refused):
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))
    [request_id] = await pending_ids(service)
    await service.approve(request_id, BOB)
    stricter = engine(
        [
            *RULES,
            {
                "name": "prod-also-needs-security",
                "match": {"namespaces": ["prod"]},
                "action": "review",
                "reviewers": {"groups": ["security"], "mode": "async"},
            },
        ]
    )
    with pytest.raises(Refused) as refused:
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods", policy=stricter))
    assert "prod-also-needs-security" in refused.value.message
    await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))  # unchanged policy: still usable


async def test_every_step_is_recorded_in_the_session(service: ApprovalService) -> None:
    stage = approval_stage(service)
    task, request_id = await held(stage, service)
    assert service.recorder is not None
    await service.recorder.flush()
    async with service.store.read() as conn:
        held_session = (await conn.execute(sa.select(sessions.c.outcome))).scalar_one()
    assert held_session == "pending"  # a session list shows it waiting, not "0 requests, -"
    await service.approve(request_id, BOB, "ok")
    await asyncio.wait_for(task, 10)
    assert service.recorder is not None
    await service.recorder.flush()
    async with service.store.read() as conn:
        session_id = (await conn.execute(sa.select(access_requests.c.session_id))).scalar_one()
        rows = (
            await conn.execute(
                sa.select(events.c.type, events.c.data).where(events.c.session_id == session_id).order_by(events.c.seq)
            )
        ).all()
    assert [r.type for r in rows] == ["session", "access_request", "approval", "grant_used"]
    assert orjson.loads(rows[2].data)["reviewer"] == "idp#bob"


async def test_requests_outside_review_pass_untouched(service: ApprovalService) -> None:
    await approval_stage(service).on_request(make_flow("GET", "/api/v1/namespaces/dev/pods"))
    assert await pending_ids(service) == []
    assert AGENT.username != BOB.username


async def test_an_approval_that_arrives_after_the_client_left_is_kept(service: ApprovalService) -> None:
    stage = approval_stage(service)
    gone = make_flow()
    task = asyncio.create_task(stage.on_request(gone))
    while not await pending_ids(service):
        assert not task.done()
        await asyncio.sleep(0.01)
    [request_id] = await pending_ids(service)
    gone.request.transport.closing = True  # type: ignore[union-attr]  # kubectl was interrupted
    await service.approve(request_id, BOB)
    with pytest.raises(Refused) as refused:
        await asyncio.wait_for(task, 10)
    assert "approved after the client disconnected; nothing was forwarded" in refused.value.message
    await asyncio.wait_for(stage.on_request(make_flow()), 10)  # the approval is still there for the rerun
