"""Notifications: JSON and Slack formats, retried with backoff from the outbox, never lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.notify import Notifier, json_message, slack_message
from kubegate.kube.status import Refused
from kubegate.store.engine import Store
from kubegate.store.tables import notification_outbox
from tests.approvals.builders import BOB, HOSTILE_HOST, Clock, approval_stage, make_flow
from tests.approvals.conftest import ServiceFactory


@dataclass
class Receiver:
    url: str
    failures: int = 0
    received: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        if state.failures > 0:
            state.failures -= 1
            return web.Response(status=503, text="busy")
        state.received.append(
            (request.path, orjson.loads(await request.read()), request.headers.get("X-Hook-Secret", ""))
        )
        state.arrived.set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{name}", hook)
    server = TestServer(app)
    await server.start_server()
    state.url = str(server.make_url(""))
    yield state
    await server.close()


def _config(receiver: Receiver, **extra: Any) -> ApprovalsConfig:
    return ApprovalsConfig.model_validate(
        {
            "notifications": [
                {"name": "slack", "url": f"{receiver.url}/slack", "format": "slack"},
                {"name": "generic", "url": f"{receiver.url}/generic", "headers": {"X-Hook-Secret": "s3"}},
            ],
            **extra,
        }
    )


async def _ask(service: Any, path: str = "/api/v1/namespaces/prod/pods") -> str:
    with pytest.raises(Refused) as refused:
        await approval_stage(service).on_request(make_flow("GET", path))
    assert refused.value.details is not None
    return str(refused.value.details["name"])


async def _outbox(store: Store) -> list[Any]:
    async with store.read() as conn:
        return list((await conn.execute(sa.select(notification_outbox).order_by(notification_outbox.c.id))).all())


async def test_a_failed_webhook_is_retried_with_backoff_until_it_answers(
    store: Store, make_service: ServiceFactory, receiver: Receiver, clock: Clock
) -> None:
    config = _config(receiver)
    service = make_service(store, config=config)
    notifier = Notifier(store, config, clock=clock)
    request_id = await _ask(service)
    receiver.failures = 2
    assert await notifier.deliver_due() == 2  # one row per webhook; both answered 503
    rows = await _outbox(store)
    assert [(r.attempts, r.next_attempt_at - clock.now, r.delivered_at) for r in rows] == [(1, 2.0, None)] * 2
    assert rows[0].last_error == "webhook slack answered 503: busy"
    assert await notifier.deliver_due() == 0  # not due yet
    clock.now += 2
    assert await notifier.deliver_due() == 2
    rows = await _outbox(store)
    assert [r.delivered_at for r in rows] == [clock.now, clock.now]
    assert [path for path, _, _ in receiver.received] == ["/slack", "/generic"]
    _, generic, secret = receiver.received[1]
    assert secret == "s3"
    assert generic["event"] == "created" and generic["request"]["id"] == request_id
    assert (
        generic["request"]["approve_command"] == f"kubegate requests approve {request_id} --server "
        "https://gateway.example:8443"
    )
    assert not any(HOSTILE_HOST.split(":")[0] in orjson.dumps(body).decode() for _, body, _ in receiver.received)
    await notifier.close()


async def test_after_the_give_up_time_the_row_is_kept_as_failed(
    store: Store, make_service: ServiceFactory, receiver: Receiver, clock: Clock
) -> None:
    config = _config(receiver, retry_give_up_after="10s")
    service = make_service(store, config=config)
    notifier = Notifier(store, config, clock=clock)
    await _ask(service)
    receiver.failures = 100
    await notifier.deliver_due()
    clock.now += 11
    await notifier.deliver_due()
    rows = await _outbox(store)
    assert [(r.attempts, r.failed_at is not None, r.delivered_at) for r in rows] == [(2, True, None)] * 2
    clock.now += 3600
    assert await notifier.deliver_due() == 0
    await notifier.close()


async def test_the_background_loop_delivers_decisions(
    store: Store, make_service: ServiceFactory, receiver: Receiver
) -> None:
    service = make_service(store, config=_config(receiver))
    await service.start()
    request_id = await _ask(service)
    await service.approve(request_id, BOB, "ok")
    while len(receiver.received) < 4:
        await asyncio.wait_for(receiver.arrived.wait(), 10)
        receiver.arrived.clear()
    generic = sorted(body["event"] for path, body, _ in receiver.received if path == "/generic")
    slack = sorted(body["text"].split(":")[0] for path, body, _ in receiver.received if path == "/slack")
    assert generic == ["approved", "created"]
    assert slack == [
        f"Access request {request_id} needs approval",
        f"Access request {request_id} was approved by idp#bob",
    ]


VIEW: dict[str, Any] = {
    "id": "abc23456",
    "description": "ci asks to delete namespaces pr-42 on connection dev",
    "requester": {"claims": {"repository": "acme/app", "run_id": "42"}},
    "reviewers": {"groups": ["platform-oncall"], "users": []},
    "expires_at": "2025-01-01T00:10:00Z",
    "summary": "delete namespaces/pr-42",
    "approve_command": "kubegate requests approve abc23456 --server https://kg",
    "decided_by": "",
    "decision_reason": "",
    "reason": "",
}


def test_slack_messages_have_text_and_blocks() -> None:
    message = slack_message("created", VIEW)
    assert (
        message["text"] == "Access request abc23456 needs approval: ci asks to delete namespaces pr-42 on "
        "connection dev"
    )
    texts = [b["text"]["text"] for b in message["blocks"]]
    assert "CI: repository=acme/app, run_id=42" in texts[0] and "Reviewers: platform-oncall" in texts[0]
    assert texts[1] == "```delete namespaces/pr-42```"
    assert texts[2] == "`kubegate requests approve abc23456 --server https://kg`"
    denied = slack_message("denied", {**VIEW, "decided_by": "bob", "decision_reason": "in use"})
    assert denied["text"].startswith("Access request abc23456 was denied by bob")
    assert "Reason: in use" in denied["blocks"][0]["text"]["text"] and len(denied["blocks"]) == 1


def test_json_messages_carry_the_whole_request() -> None:
    assert json_message("approved", VIEW) == {
        "apiVersion": "kubegate.dev/v1",
        "kind": "AccessRequestEvent",
        "event": "approved",
        "request": VIEW,
    }


async def test_finished_notifications_leave_the_outbox_after_the_retention(
    store: Store, make_service: ServiceFactory, receiver: Receiver, clock: Clock
) -> None:
    config = _config(receiver, notification_retention="1d", retry_give_up_after="10s")
    service = make_service(store, config=config)
    notifier = Notifier(store, config, clock=clock)
    await _ask(service)
    assert await notifier.deliver_due() == 2  # delivered
    receiver.failures = 100
    await _ask(service, "/api/v1/namespaces/prod/secrets")
    await notifier.deliver_due()
    clock.now += 11
    await notifier.deliver_due()  # given up
    receiver.failures = 0
    await _ask(service, "/api/v1/namespaces/prod/configmaps")  # a third request whose rows are still due
    clock.now += 86_400 - 10
    assert await notifier.prune() == 2  # only the delivered rows are a day old
    clock.now += 11
    assert await notifier.prune() == 2  # now the given-up ones too
    rows = await _outbox(store)
    assert len(rows) == 2 and all(r.delivered_at is None and r.failed_at is None for r in rows)
    await notifier.close()
