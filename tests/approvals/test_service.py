"""The approval service on both stores: reviewers, min_approvals, deny, revoke, scope grants, restarts."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import sqlalchemy as sa

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.model import ResourceRef, Scope
from kubegate.approvals.service import ApprovalService
from kubegate.kube.status import Refused
from kubegate.store.engine import Store
from kubegate.store.tables import notification_outbox
from tests.approvals.builders import (
    AGENT,
    BOB,
    CAROL,
    DAVE,
    ONCALL_AGENT,
    Clock,
    approval_stage,
    cancel,
    held,
    make_flow,
)
from tests.approvals.conftest import ServiceFactory

PROD_PODS = {"method": "GET", "path": "/api/v1/namespaces/prod/pods"}


async def async_request(service: ApprovalService, **flow_args: object) -> str:
    """Ask through an async rule; return the access request id from the 403's details."""
    with pytest.raises(Refused) as refused:
        await approval_stage(service).on_request(make_flow(**flow_args))  # type: ignore[arg-type]
    assert refused.value.details is not None
    return str(refused.value.details["name"])


async def test_nobody_approves_their_own_request(service: ApprovalService) -> None:
    request_id = await async_request(service, **PROD_PODS, identity=ONCALL_AGENT)
    with pytest.raises(Refused) as refused:
        await service.approve(request_id, ONCALL_AGENT)
    assert refused.value.code == 403 and "nobody reviews their own request" in refused.value.message
    with pytest.raises(Refused):  # the same subject at the same issuer under another user name
        await service.approve(request_id, replace(ONCALL_AGENT, username="renamed"))
    with pytest.raises(Refused):
        await service.deny(request_id, ONCALL_AGENT, "no")


async def test_only_the_rules_reviewers_decide(service: ApprovalService) -> None:
    request_id = await async_request(service, **PROD_PODS)
    with pytest.raises(Refused) as refused:
        await service.approve(request_id, DAVE)
    assert "is not a reviewer of access request" in refused.value.message
    assert "group platform-oncall" in refused.value.message


async def test_min_approvals_needs_that_many_different_reviewers(service: ApprovalService) -> None:
    stage = approval_stage(service)
    task, request_id = await held(
        stage,
        service,
        method="PATCH",
        path="/api/v1/namespaces/dev/secrets/db",
        body=b'{"data":{"password":"aHVudGVyMg=="}}',
    )
    first = await service.approve(request_id, BOB)
    assert first.state == "pending"
    assert first.as_dict(0)["missing"] == ["rule secrets-need-two needs 1 more approval(s) from platform-oncall"]
    with pytest.raises(Refused) as twice:
        await service.approve(request_id, BOB)
    assert twice.value.code == 409 and "already approved" in twice.value.message
    assert not task.done()
    second = await service.approve(request_id, CAROL)
    assert second.state == "approved" and [v.reviewer for v in second.votes] == ["idp#bob", "idp#carol"]
    await asyncio.wait_for(task, 10)
    assert "aHVudGVyMg==" not in second.summary and "password" in second.summary  # values masked, keys shown


async def test_deny_needs_a_reason_and_a_decided_request_stays_decided(service: ApprovalService) -> None:
    request_id = await async_request(service, **PROD_PODS)
    with pytest.raises(Refused) as no_reason:
        await service.deny(request_id, BOB, "  ")
    assert no_reason.value.code == 400
    denied = await service.deny(request_id, BOB, "use the staging copy")
    assert (denied.state, denied.decided_by, denied.decision_reason) == ("denied", "idp#bob", "use the staging copy")
    with pytest.raises(Refused) as late:
        await service.approve(request_id, CAROL)
    assert late.value.code == 409 and "already denied (by idp#bob)" in late.value.message


async def test_an_expired_request_cannot_be_approved(service: ApprovalService, clock: Clock) -> None:
    request_id = await async_request(service, **PROD_PODS)
    clock.now += 3601
    with pytest.raises(Refused) as late:
        await service.approve(request_id, BOB)
    assert "already expired" in late.value.message
    second = await async_request(service, **PROD_PODS)  # asking again makes a fresh request
    assert second != request_id


async def test_revoke_ends_an_unused_grant_and_withdraws_a_pending_request(service: ApprovalService) -> None:
    request_id = await async_request(service, **PROD_PODS)
    await service.approve(request_id, BOB)
    with pytest.raises(Refused):
        await service.revoke(request_id, DAVE, "not mine", admin=False)
    revoked = await service.revoke(request_id, BOB, "wrong cluster", admin=False)
    assert revoked.state == "revoked" and revoked.grant is not None and revoked.grant.revoked_by == "idp#bob"
    with pytest.raises(Refused):  # the revoked approval no longer lets the request through
        await approval_stage(service).on_request(make_flow(**PROD_PODS))  # type: ignore[arg-type]
    pending = await async_request(service, method="GET", path="/api/v1/namespaces/prod/pods/web")
    withdrawn = await service.revoke(pending, AGENT, "not needed after all", admin=False)
    assert withdrawn.state == "revoked"
    with pytest.raises(Refused) as twice:
        await service.revoke(pending, AGENT, "", admin=False)
    assert twice.value.code == 409


SCOPE = Scope(
    namespace="prod",
    verbs=("get", "list"),
    resources=(ResourceRef("pods"), ResourceRef("pods", "", "log")),
    duration=3600,
)


async def test_a_scope_grant_allows_what_it_names_until_it_expires(service: ApprovalService, clock: Clock) -> None:
    request = await service.ask_scope(AGENT, "dev", SCOPE, "incident 4711: read prod pod logs", "https://kg")
    assert [r.rule for r in request.rules] == ["prod-reads-need-approval"]
    assert request.describe() == (
        "gh#repo:acme/app asks for get,list on pods,pods/log in namespace prod for 1h on connection dev"
    )
    await service.approve(request.id, BOB)
    stage = approval_stage(service)
    for path in (
        "/api/v1/namespaces/prod/pods",
        "/api/v1/namespaces/prod/pods/web",
        "/api/v1/namespaces/prod/pods/web/log",
    ):
        await stage.on_request(make_flow("GET", path))
    with pytest.raises(Refused):  # another namespace's review is not covered
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/secrets"))
    with pytest.raises(Refused):
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods", identity=DAVE))
    got = await service.get(request.id)
    assert got is not None and got.grant is not None and got.grant.uses == 3
    clock.now += 3601
    with pytest.raises(Refused):
        await stage.on_request(make_flow("GET", "/api/v1/namespaces/prod/pods"))


async def test_a_scope_never_widens_what_policy_denies_or_asks_for_what_it_allows(service: ApprovalService) -> None:
    denied = Scope("kube-system", ("delete",), (ResourceRef("pods"),), 3600)
    with pytest.raises(Refused) as refused:
        await service.ask_scope(AGENT, "dev", denied, "cleanup", "https://kg")
    assert refused.value.code == 403 and "the policy denies delete pods" in refused.value.message
    allowed = Scope("dev", ("get",), (ResourceRef("pods"),), 3600)
    with pytest.raises(Refused) as needless:
        await service.ask_scope(AGENT, "dev", allowed, "look", "https://kg")
    assert needless.value.code == 409 and "already allows" in needless.value.message
    for bad, message in ((replace(SCOPE, duration=9 * 3600), "--duration"), (replace(SCOPE, verbs=("fly",)), "fly")):
        with pytest.raises(Refused) as invalid:
            await service.ask_scope(AGENT, "dev", bad, "why", "https://kg")
        assert message in invalid.value.message
    with pytest.raises(Refused) as unknown:
        await service.ask_scope(AGENT, "nowhere", SCOPE, "why", "https://kg")
    assert unknown.value.code == 404


async def test_requests_and_grants_survive_a_restart(store_url: str, make_service: ServiceFactory) -> None:
    store = await Store.open(store_url)
    first = make_service(store)
    waiting, request_id = await held(approval_stage(first), first)
    await cancel(waiting)  # the gateway goes down while kubectl waits
    await first.close()
    await store.close()

    store = await Store.open(store_url)
    try:
        second = make_service(store)
        await second.start()
        again = await second.get(request_id)
        assert again is not None and again.state == "pending" and again.username == AGENT.username
        await second.approve(request_id, BOB)
        await approval_stage(second).on_request(make_flow())  # the retried kubectl gets through once
    finally:
        await second.close()
        await store.close()


async def test_notifications_are_written_with_the_change(store: Store, make_service: ServiceFactory) -> None:
    config = ApprovalsConfig.model_validate(
        {
            "notifications": [
                {"name": "oncall", "url": "https://hooks.example/T1", "format": "slack"},
                {
                    "name": "audit",
                    "url": "https://audit.example/in",
                    "events": ["created", "approved", "denied", "revoked"],
                },
            ]
        }
    )
    service = make_service(store, config=config)
    request_id = await async_request(service, **PROD_PODS)
    await service.approve(request_id, BOB)
    async with store.read() as conn:
        rows = (
            await conn.execute(
                sa.select(notification_outbox.c.event, notification_outbox.c.webhook).order_by(notification_outbox.c.id)
            )
        ).all()
    assert [(r.event, r.webhook) for r in rows] == [
        ("created", "oncall"),
        ("created", "audit"),
        ("approved", "oncall"),
        ("approved", "audit"),
    ]


def test_is_reviewer_follows_the_policy(service: ApprovalService) -> None:
    assert service.is_reviewer(BOB) and service.is_reviewer(CAROL)
    assert not service.is_reviewer(DAVE) and not service.is_reviewer(AGENT)
