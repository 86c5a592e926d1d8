"""Builders for approval tests: identities, a policy with review rules, a settable clock, and flows
as the pipeline hands them to the approval stage."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
import time
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.approvals.service import ApprovalService
from kubegate.approvals.stage import ApprovalStage
from kubegate.flow import Flow
from kubegate.identity.model import Identity
from kubegate.kube.body import parse_body
from kubegate.kube.requestinfo import parse_request_info
from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.policy.engine import PolicyEngine
from kubegate.policy.model import PolicyRule
from kubegate.recording.recorder import Recorder
from kubegate.upstream.client import UpstreamClient
from kubegate.upstream.credentials import CredentialError

MASKER = Masker(MaskingConfig())
GH = "https://token.actions.githubusercontent.com"
AGENT = Identity(
    issuer=GH,
    subject="repo:acme/app:ref:refs/heads/main",
    username="gh#repo:acme/app",
    groups=("ci-agents",),
    claims={"repository": "acme/app", "run_id": "42", "actor": "alice"},
)
BOB = Identity(issuer="https://idp.example", subject="bob", username="idp#bob", groups=("platform-oncall",))
CAROL = Identity(
    issuer="https://idp.example", subject="carol", username="idp#carol", groups=("platform-oncall", "security")
)
DAVE = Identity(issuer="https://idp.example", subject="dave", username="idp#dave", groups=("developers",))
ONCALL_AGENT = Identity(
    issuer=GH,
    subject="repo:acme/ops:ref:refs/heads/main",
    username="gh#repo:acme/ops",
    groups=("ci-agents", "platform-oncall"),
)

RULES: list[dict[str, Any]] = [
    {"name": "agents-work", "subjects": {"groups": ["ci-agents", "developers"]}, "action": "allow"},
    {
        "name": "namespace-deletion-needs-a-human",
        "match": {"verbs": ["delete"], "resources": ["namespaces"]},
        "action": "review",
        "reviewers": {"groups": ["platform-oncall"]},
    },
    {
        "name": "prod-reads-need-approval",
        "match": {"namespaces": ["prod"], "verbs": ["get", "list"]},
        "action": "review",
        "reviewers": {"groups": ["platform-oncall"], "mode": "async", "timeout": "1h"},
    },
    {
        "name": "secrets-need-two",
        "match": {"resources": ["secrets"], "verbs": ["update", "patch"]},
        "action": "review",
        "reviewers": {"groups": ["platform-oncall"], "min_approvals": 2},
    },
    {
        "name": "exec-needs-security",
        "match": {"resources": ["pods/exec"]},
        "action": "review",
        "reviewers": {"groups": ["security"], "mode": "async"},
    },
    {
        "name": "kube-system-is-read-only",
        "match": {"namespaces": ["kube-system"], "verbs": ["delete"]},
        "action": "deny",
    },
]


def engine(rules: list[dict[str, Any]] = RULES) -> PolicyEngine:
    return PolicyEngine.from_rules([PolicyRule.model_validate(r) for r in rules])


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class NoUpstream:
    """A connection whose cluster cannot be read: summaries fall back to the request itself."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = UpstreamClient(self)  # type: ignore[arg-type]
        self.credentials = self

    async def authorization(self, identity: Identity | None) -> str:
        raise CredentialError("no cluster in this test")

    async def upstream_identity_headers(self, identity: Identity) -> list[tuple[str, str]]:
        raise CredentialError("no cluster in this test")


class Client:
    """The client's connection as the stage sees it: TLS, and open until `closing` is set."""

    def __init__(self) -> None:
        self.closing = False
        self._extra = {
            "sslcontext": ssl.create_default_context(),
            "peername": ("10.0.0.7", 50000),
            "sockname": ("10.0.0.1", 8443),
        }

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)


GATEWAY_URL = "https://gateway.example:8443"
"""The configured base URL (listen.external_url) the approve command must name."""
HOSTILE_HOST = "attacker.example:666"
"""The Host header every test flow sends: it must never appear in a URL kubegate hands out."""


def make_flow(
    method: str = "DELETE",
    path: str = "/api/v1/namespaces/pr-42",
    query: str = "",
    *,
    body: bytes = b"",
    identity: Identity = AGENT,
    connection: Any = "dev",
    session: str = "kubectl-1",
    policy: PolicyEngine | None = None,
    upgrade: bool = False,
    recorder: Recorder | None = None,
) -> Flow:
    """A flow as it reaches the approval stage: identity, its session (with a recorder), request info and
    the policy's decision set."""
    headers = {
        "User-Agent": "kubectl/v1.32.4",
        "Kubectl-Session": session,
        "Kubectl-Command": "kubectl delete",
        "Host": HOSTILE_HOST,
    }
    request = make_mocked_request(
        method,
        path + (f"?{query}" if query else ""),
        headers=headers,
        transport=Client(),
        sslcontext=ssl.create_default_context(),
    )
    conn = NoUpstream(connection) if isinstance(connection, str) else connection
    flow = Flow(
        request=request,
        connection=conn,
        method=method,
        raw_path=path,  # type: ignore[arg-type]
        query_string=query,
        headers=CIMultiDict({"Content-Type": "application/json"} if body else {}),
        body=body,
        is_upgrade=upgrade,
    )
    flow.identity = identity
    if recorder is not None:
        flow.session_id = recorder.session_for(flow)
    flow.info = parse_request_info(method, path, query)
    if body:  # as the body stage and the policy's dry run would leave it: here the cluster stores what was sent
        flow.sent = parse_body(body, "application/json")
        flow.stored = flow.sent if flow.info.verb in ("create", "update", "patch") else None
    flow.decision = (policy or engine()).decide(identity, flow.info, conn.name, flow.object)
    return flow


async def pending_ids(service: ApprovalService) -> list[str]:
    return [r.id for r in await service.list(["pending"], 100)]


async def held(stage: ApprovalStage, service: ApprovalService, **flow_args: Any) -> tuple[asyncio.Task[None], str]:
    """Start a wait-mode request; return the task holding it and its (new) access request id."""
    before = set(await pending_ids(service))
    task = asyncio.create_task(stage.on_request(make_flow(recorder=service.recorder, **flow_args)))
    while True:
        new = set(await pending_ids(service)) - before
        if new:
            return task, new.pop()
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)


async def cancel(task: asyncio.Task[None]) -> None:
    """kubectl gave up: the held request is cancelled (its access request stays)."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def approval_stage(service: ApprovalService, masker: Masker = MASKER) -> ApprovalStage:
    return ApprovalStage(service, masker, lambda: GATEWAY_URL)


SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
"""The Slack app's signing secret in tests; slack_signed signs a body with it as Slack does."""


def slack_signed(body: bytes, *, secret: str = SLACK_SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slack_click(action: str, request_id: str, user: str = "U0BOB") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "bob"},
        "actions": [{"action_id": action, "block_id": "kubegate-review", "value": request_id}],
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()
