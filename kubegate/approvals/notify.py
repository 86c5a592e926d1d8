"""Tell reviewers: a generic JSON webhook and Slack incoming-webhook messages, from a durable outbox.

Rows are written in the same transaction as the change they announce (see ApprovalService), then
posted by a background loop in any gateway process. A process claims a row by moving its next
attempt past a lease, so replicas never post the same row at once; a failure is retried with
exponential backoff until `retry_give_up_after`, and the row stays in the outbox either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kubegate.approvals.config import ApprovalsConfig, WebhookConfig
from kubegate.approvals.model import AccessRequest
from kubegate.store.engine import Store, describe
from kubegate.store.tables import notification_outbox

log = logging.getLogger(__name__)
LEASE_SECONDS = 60.0
SEND_TIMEOUT = 10.0
BATCH = 20
PRUNE_INTERVAL = 3600.0  # seconds between outbox clean-ups of one process
SLACK_TEXT_LIMIT = 2900

TITLES = {
    "created": "needs approval",
    "approved": "was approved",
    "denied": "was denied",
    "expired": "expired without a decision",
    "revoked": "was revoked",
}


class NotifyError(Exception):
    """A webhook did not accept a message; the text says why (never the URL, which may hold a secret)."""


def json_message(event: str, view: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "kubegate.dev/v1", "kind": "AccessRequestEvent", "event": event, "request": view}


def slack_message(event: str, view: dict[str, Any], *, buttons: bool = False) -> dict[str, Any]:
    """An incoming-webhook payload: `text` for notifications and clients without blocks, plus blocks; with
    `buttons` (approvals.slack is configured) a new request gets Approve / Deny (see approvals/slack.py)."""
    headline = f"Access request {view['id']} {TITLES.get(event, event)}"
    if event in ("approved", "denied", "revoked") and view.get("decided_by"):
        headline += f" by {view['decided_by']}"
    lines = [f"*{headline}*", view["description"]]
    if view.get("decision_reason"):
        lines.append(f"Reason: {view['decision_reason']}")
    if view.get("reason") and event == "created":
        lines.append(f"Requester's reason: {view['reason']}")
    claims = view["requester"]["claims"]
    if claims:
        lines.append("CI: " + ", ".join(f"{k}={v}" for k, v in sorted(claims.items())))
    if event == "created":
        who = ", ".join([*view["reviewers"]["groups"], *view["reviewers"]["users"]])
        lines.append(f"Reviewers: {who}; expires {view['expires_at']}")
    body = "\n".join(lines)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": body[:SLACK_TEXT_LIMIT]}}]
    if view.get("summary") and event == "created":
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "```" + view["summary"][: SLACK_TEXT_LIMIT - 6] + "```"},
            }
        )
    if event == "created":
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"`{view['approve_command']}`"}})
    if event == "created" and buttons:
        blocks.append(
            {
                "type": "actions",
                "block_id": "kubegate-review",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "approve",
                        "style": "primary",
                        "value": view["id"],
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                    {
                        "type": "button",
                        "action_id": "deny",
                        "style": "danger",
                        "value": view["id"],
                        "text": {"type": "plain_text", "text": "Deny"},
                    },
                ],
            }
        )
    return {"text": f"{headline}: {view['description']}", "blocks": blocks}


def render(webhook: WebhookConfig, event: str, view: dict[str, Any], *, buttons: bool = False) -> bytes:
    message = slack_message(event, view, buttons=buttons) if webhook.format == "slack" else json_message(event, view)
    return orjson.dumps(message)


class Notifier:
    def __init__(
        self, store: Store, config: ApprovalsConfig, *, clock: Callable[[], float] = time.time, interval: float = 1.0
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    async def enqueue(self, conn: AsyncConnection, request: AccessRequest, event: str) -> None:
        """Inside the transaction that made the change: one outbox row per webhook that wants the event."""
        targets = [w for w in self.config.notifications if event in w.events]
        if not targets:
            return
        now = self.clock()
        view = request.as_dict(now)
        buttons = self.config.slack is not None
        await conn.execute(
            sa.insert(notification_outbox),
            [
                {
                    "request_id": request.id,
                    "event": event,
                    "webhook": w.name,
                    "body": render(w, event, view, buttons=buttons).decode(),
                    "created_at": now,
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for w in targets
            ],
        )

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self.config.notifications and self._task is None:
            self._task = asyncio.create_task(self._run(), name="kubegate-approval-notifier")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.close()

    async def _run(self) -> None:
        pruned_at = 0.0
        while True:
            try:
                while await self.deliver_due() == BATCH:
                    pass
                if self.clock() - pruned_at >= PRUNE_INTERVAL:
                    await self.prune()
                    pruned_at = self.clock()
            except Exception as exc:
                log.error("delivering approval notifications failed (will retry): %s", describe(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):  # not wait_for: see DecisionSignals.wait
                    await self._wake.wait()
            self._wake.clear()

    async def deliver_due(self) -> int:
        """Post every due row this process can claim; returns how many it tried."""
        now = self.clock()
        due = (
            sa.select(notification_outbox)
            .where(
                notification_outbox.c.delivered_at.is_(None),
                notification_outbox.c.failed_at.is_(None),
                notification_outbox.c.next_attempt_at <= now,
            )
            .order_by(notification_outbox.c.id)
            .limit(BATCH)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(due)).all()
        tried = 0
        for row in rows:
            if await self._claim(row.id, row.next_attempt_at, now):
                tried += 1
                await self._deliver(row)
        return tried

    async def prune(self) -> int:
        """Remove notifications finished (delivered or given up) longer ago than the retention."""
        horizon = self.clock() - self.config.notification_retention
        outbox = notification_outbox.c
        async with self.store.write() as conn:
            done = await conn.execute(
                sa.delete(notification_outbox).where(sa.or_(outbox.delivered_at < horizon, outbox.failed_at < horizon))
            )
        return int(done.rowcount)

    async def _claim(self, row_id: int, seen: float, now: float) -> bool:
        async with self.store.write() as conn:
            return bool(
                (
                    await conn.execute(
                        sa.update(notification_outbox)
                        .where(
                            notification_outbox.c.id == row_id,
                            notification_outbox.c.next_attempt_at == seen,
                            notification_outbox.c.delivered_at.is_(None),
                        )
                        .values(next_attempt_at=now + LEASE_SECONDS)
                    )
                ).rowcount
            )

    async def _deliver(self, row: Any) -> None:
        webhook = self.config.webhook(row.webhook)
        error = ""
        if webhook is None:
            error = f"webhook {row.webhook} is no longer configured"
        else:
            try:
                await self._post(webhook, row.body.encode())
            except NotifyError as exc:
                error = str(exc)
        now = self.clock()
        attempts = row.attempts + 1
        if not error:
            values: dict[str, Any] = {"delivered_at": now, "attempts": attempts, "last_error": ""}
        elif webhook is None or now - row.created_at >= self.config.retry_give_up_after:
            log.error(
                "giving up on notification %d for access request %s via %s: %s",
                row.id,
                row.request_id,
                row.webhook,
                error,
            )
            values = {"failed_at": now, "attempts": attempts, "last_error": error}
        else:
            delay = min(self.config.retry_max_interval, 2.0**attempts)
            log.warning(
                "notification %d for access request %s via %s failed (attempt %d, next in %gs): %s",
                row.id,
                row.request_id,
                row.webhook,
                attempts,
                delay,
                error,
            )
            values = {"attempts": attempts, "next_attempt_at": now + delay, "last_error": error}
        async with self.store.write() as conn:
            await conn.execute(
                sa.update(notification_outbox).where(notification_outbox.c.id == row.id).values(**values)
            )

    async def _post(self, webhook: WebhookConfig, body: bytes) -> None:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT))
        headers = {"Content-Type": "application/json", **webhook.headers}
        try:
            async with self._http.post(webhook.url, data=body, headers=headers, allow_redirects=False) as response:
                if response.status >= 300:
                    text = (await response.text(errors="replace"))[:200]
                    raise NotifyError(f"webhook {webhook.name} answered {response.status}: {text}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NotifyError(f"webhook {webhook.name} is unreachable: {exc.__class__.__name__}") from exc
