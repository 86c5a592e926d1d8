"""Slack interactive approvals: the endpoint Slack posts an Approve or Deny click to.

Slack signs each request (HMAC-SHA256 of `v0:timestamp:body` with the app's signing secret); slack_sdk's
SignatureVerifier checks it and refuses timestamps more than five minutes off. A signed request seen before
is a replay and is refused too, by every replica: the signatures seen are kept in the store (replays.py)
for as long as their timestamps are accepted, and a click is refused while the store cannot say. The
clicking Slack user acts as the reviewer `approvals.slack.users` maps it to; the approval service then
judges that reviewer exactly as it judges `kubegate requests approve`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from kubegate.approvals.config import SlackConfig
from kubegate.approvals.replays import first_sight
from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.store.engine import StoreError, describe

if TYPE_CHECKING:
    from kubegate.approvals.service import ApprovalService

log = logging.getLogger(__name__)
SLACK_ISSUER = "https://slack.com"
REPLAY_WINDOW = 300.0  # SignatureVerifier's own limit on the timestamp's distance from now


class SlackInteractions:
    def __init__(
        self, config: SlackConfig, service: Callable[[], ApprovalService | None], clock: Callable[[], float] = time.time
    ) -> None:
        from slack_sdk.signature import SignatureVerifier

        self.config = config
        self.service = service
        self.clock = clock
        self.verifier = SignatureVerifier(config.secret())

    async def _problem(self, headers: Any, body: bytes, service: ApprovalService) -> str | None:
        signature = headers.get("X-Slack-Signature", "")
        stamp = headers.get("X-Slack-Request-Timestamp")
        try:
            valid = self.verifier.is_valid(body, stamp, signature)
        except ValueError:
            valid = False
        if not valid:
            return "the Slack signature is missing, does not verify, or is older than five minutes"
        now = self.clock()
        # Accepted while |now - timestamp| <= the window: remembered until the timestamp is that old.
        keep_until = max(now, float(stamp)) + REPLAY_WINDOW
        if not await first_sight(service.store, signature, now=now, keep_until=keep_until):
            return "this Slack request was received before: a replay"
        return None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        service = self.service()
        if service is None:
            return web.json_response({"error": "kubegate is starting"}, status=503)
        try:
            problem = await self._problem(request.headers, body, service)
        except (StoreError, SQLAlchemyError, OSError) as exc:
            log.error("cannot check a Slack interaction for a replay: %s", describe(exc))
            return web.json_response(
                {"error": "kubegate cannot check this Slack request for a replay (its store is unavailable)"},
                status=503,
            )
        if problem is not None:
            return web.json_response({"error": problem}, status=401)
        try:
            payload = orjson.loads(parse_qs(body.decode())["payload"][0])
            action = payload["actions"][0]
            kind, request_id, user = action["action_id"], str(action["value"]), str(payload["user"]["id"])
        except (KeyError, IndexError, TypeError, ValueError, orjson.JSONDecodeError):
            return web.json_response({"error": "not a Slack block_actions interaction"}, status=400)
        if kind not in ("approve", "deny"):
            return web.json_response({"error": f"unknown action {kind!r}"}, status=400)
        reviewer = self.config.users.get(user)
        if reviewer is None:
            return _reply(
                f"Your Slack user {user} is not a kubegate reviewer (approvals.slack.users); "
                f"use `kubegate requests {kind} {request_id}`."
            )
        identity = Identity(
            issuer=SLACK_ISSUER, subject=user, username=reviewer.username, groups=tuple(reviewer.groups)
        )
        try:
            if kind == "approve":
                decided = await service.approve(request_id, identity, comment="approved in Slack")
            else:
                decided = await service.deny(request_id, identity, reason=f"denied in Slack by {reviewer.username}")
        except Refused as refusal:
            return _reply(f"kubegate did not {kind} {request_id}: {refusal.message}")
        return _reply(f"Access request {request_id} is {decided.state} ({kind} by {reviewer.username}).")


def _reply(text: str) -> web.Response:
    """What the clicking user sees; Slack shows an error for anything but 200, so refusals are 200 too."""
    return web.json_response({"response_type": "ephemeral", "replace_original": False, "text": text})


def setup_routes(
    app: web.Application, config: SlackConfig | None, service: Callable[[], ApprovalService | None]
) -> None:
    if config is not None:
        app.router.add_post("/slack/interactions", SlackInteractions(config, service).handle)
