"""A signed Slack Approve click lets a held real kubectl request through, as the reviewer the Slack user maps to."""

from __future__ import annotations

import json
import urllib.request

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubegate.approvals.config import SlackConfig
from kubegate.approvals.slack import setup_routes
from tests.approvals.builders import SLACK_SECRET, slack_click, slack_signed
from tests.conftest import World
from tests.e2e.test_approvals import _namespace, delete_namespace, pending_request

pytestmark = pytest.mark.e2e


def test_a_signed_slack_click_approves_a_held_kubectl_request(world: World) -> None:
    config = SlackConfig(
        signing_secret=SLACK_SECRET, users={"U0BOB": {"username": "sandbox:bob", "groups": ["platform-oncall"]}}
    )

    async def serve() -> TestServer:
        app = web.Application()
        setup_routes(app, config, lambda: world.gateway.approvals)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        return server

    server = world.call(serve())
    name = _namespace(world)
    kubectl = delete_namespace(world, name)
    try:
        request = pending_request(world, f"namespaces {name}", kubectl)
        body = slack_click("approve", request["id"])
        req = urllib.request.Request(str(server.make_url("/slack/interactions")), data=body, headers=slack_signed(body))
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert (
                json.loads(resp.read())["text"] == f"Access request {request['id']} is approved "
                "(approve by sandbox:bob)."
            )
        out, err = kubectl.communicate(timeout=60)
        assert kubectl.returncode == 0, err
        assert f'namespace "{name}" deleted' in out
        assert f"access request {request['id']} was approved by sandbox:bob" in err
    finally:
        kubectl.kill()
        world.call(server.close())
