"""Slack interactive approvals: a signed Approve click decides a held request as the mapped reviewer;
forged signatures, stale timestamps, replays and Slack users nobody mapped decide nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubegate.approvals.config import SlackConfig
from kubegate.approvals.notify import slack_message
from kubegate.approvals.replays import first_sight
from kubegate.approvals.service import ApprovalService
from kubegate.approvals.slack import setup_routes
from kubegate.config import load_config
from kubegate.configbase import ConfigError
from kubegate.kube.status import Refused
from kubegate.store.engine import Store
from tests.approvals.builders import SLACK_SECRET, approval_stage, cancel, held, slack_click, slack_signed
from tests.approvals.conftest import ServiceFactory

CONFIG = SlackConfig(
    signing_secret=SLACK_SECRET,
    users={
        "U0BOB": {"username": "idp#bob", "groups": ["platform-oncall"]},
        "U0DAVE": {"username": "idp#dave", "groups": ["developers"]},
    },
)


@asynccontextmanager
async def serving(service: ApprovalService) -> AsyncIterator[str]:
    app = web.Application()
    setup_routes(app, CONFIG, lambda: service)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/slack/interactions"))
    finally:
        await server.close()


@pytest.fixture
async def endpoint(service: ApprovalService) -> AsyncIterator[str]:
    async with serving(service) as url:
        yield url


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_a_signed_approve_click_lets_the_held_request_through(service: ApprovalService, endpoint: str) -> None:
    task, request_id = await held(approval_stage(service), service)
    body = slack_click("approve", request_id)
    status, reply = await post(endpoint, body, slack_signed(body))
    assert status == 200 and reply["text"] == f"Access request {request_id} is approved (approve by idp#bob)."
    await asyncio.wait_for(task, 5)  # the held kubectl request goes on
    decided = await service.get(request_id)
    assert decided is not None and decided.state == "approved" and decided.decided_by == "idp#bob"


async def test_forged_stale_and_replayed_clicks_decide_nothing(service: ApprovalService, endpoint: str) -> None:
    task, request_id = await held(approval_stage(service), service)
    body = slack_click("approve", request_id)
    forged = await post(endpoint, body, slack_signed(body, secret="not-the-secret"))
    stale = await post(endpoint, body, slack_signed(body, ts=int(time.time()) - 600))
    tampered = await post(endpoint, slack_click("approve", request_id, user="U0DAVE"), slack_signed(body))
    for status, reply in (forged, stale, tampered):
        assert status == 401 and "signature" in reply["error"]
    assert (await service.get(request_id)).state == "pending"  # type: ignore[union-attr]
    deny = slack_click("deny", request_id)
    headers = slack_signed(deny)
    assert (await post(endpoint, deny, headers))[0] == 200
    status, reply = await post(endpoint, deny, headers)
    assert status == 401 and "replay" in reply["error"]
    decided = await service.get(request_id)
    assert decided is not None and decided.state == "denied" and decided.decision_reason == "denied in Slack by idp#bob"
    with pytest.raises(Refused, match="denied in Slack by idp#bob"):
        await asyncio.wait_for(task, 5)


async def test_a_click_replayed_to_another_replica_is_refused_there(
    service: ApprovalService, store_url: str, make_service: ServiceFactory
) -> None:
    """Two replicas, each with its own connection to one store: the second has never seen the click."""
    other_store = await Store.open(store_url)
    try:
        other = make_service(other_store)
        await other.start()
        task, request_id = await held(approval_stage(service), service)
        body = slack_click("deny", request_id)
        headers = slack_signed(body)
        async with serving(service) as first, serving(other) as second:
            assert (await post(first, body, headers))[0] == 200
            status, reply = await post(second, body, headers)
            assert status == 401 and "replay" in reply["error"]
            fresh = slack_signed(body, ts=int(time.time()) - 1)  # the same click, signed anew: not a replay
            status, reply = await post(second, body, fresh)
            assert status == 200 and reply["text"].startswith(f"kubegate did not deny {request_id}: ")
        with pytest.raises(Refused):
            await asyncio.wait_for(task, 5)
    finally:
        await other_store.close()


async def test_seen_signatures_are_kept_for_the_window_and_then_forgotten(store: Store) -> None:
    assert await first_sight(store, "v0=aa", now=1000.0, keep_until=1300.0)
    assert not await first_sight(store, "v0=aa", now=1299.0, keep_until=1599.0)
    assert await first_sight(store, "v0=bb", now=1301.0, keep_until=1601.0)  # removes aa's expired row
    assert await first_sight(store, "v0=aa", now=1302.0, keep_until=1602.0)


async def test_a_click_is_refused_when_the_store_cannot_say_whether_it_is_a_replay(
    tmp_path: Path, make_service: ServiceFactory
) -> None:
    broken = await Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        service = make_service(broken)
        await service.start()
        task, request_id = await held(approval_stage(service), service)
        (tmp_path / "k.db").unlink()  # the store refuses writes to a removed file
        body = slack_click("approve", request_id)
        async with serving(service) as url:
            status, reply = await post(url, body, slack_signed(body))
        assert status == 503 and "cannot check this Slack request for a replay" in reply["error"]
        await cancel(task)
    finally:
        await broken.close()


async def test_a_slack_user_nobody_mapped_or_who_is_no_reviewer_decides_nothing(
    service: ApprovalService, endpoint: str
) -> None:
    task, request_id = await held(approval_stage(service), service)
    stranger = slack_click("approve", request_id, user="U0EVE")
    status, reply = await post(endpoint, stranger, slack_signed(stranger))
    assert status == 200 and "U0EVE is not a kubegate reviewer" in reply["text"]
    dave = slack_click("approve", request_id, user="U0DAVE")
    status, reply = await post(endpoint, dave, slack_signed(dave))
    assert status == 200 and reply["text"].startswith(f"kubegate did not approve {request_id}: ")
    assert (await service.get(request_id)).state == "pending"  # type: ignore[union-attr]
    await cancel(task)


def test_new_requests_get_buttons_only_when_slack_is_configured() -> None:
    view = {
        "id": "ar-1",
        "description": "delete namespace pr-42",
        "requester": {"claims": {}},
        "summary": "",
        "reviewers": {"groups": ["platform-oncall"], "users": []},
        "expires_at": "soon",
        "approve_command": "kubegate requests approve ar-1",
    }
    plain = slack_message("created", view)
    assert all(b["type"] != "actions" for b in plain["blocks"])
    (actions,) = [b for b in slack_message("created", view, buttons=True)["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [("approve", "ar-1"), ("deny", "ar-1")]


def test_the_signing_secret_is_required_and_read_at_load(tmp_path: Path) -> None:
    config = tmp_path / "kubegate.yaml"
    config.write_text("approvals: {slack: {users: {}}}\n")
    with pytest.raises(ConfigError, match=r"approvals\.slack: set exactly one of signing_secret"):
        load_config(config)
    config.write_text("approvals: {slack: {signing_secret_file: missing}}\n")
    with pytest.raises(ConfigError, match=r"approvals\.slack\.signing_secret_file: cannot read"):
        load_config(config)
