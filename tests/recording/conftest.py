"""Fixtures for recording tests: a store on SQLite and on a fresh PostgreSQL database, and flows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import parse_request_info
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store

ALICE = Identity(
    issuer="https://token.actions.githubusercontent.com",
    subject="repo:acme/app:ref:refs/heads/main",
    username="gh#repo:acme/app",
    groups=("ci-agents", "acme"),
    claims={"repository": "acme/app", "workflow": "deploy", "run_id": "42", "actor": "alice"},
)


@pytest.fixture
async def recorder(store: Store) -> AsyncIterator[Recorder]:
    rec = Recorder(store, max_body_bytes=64, retention_seconds=3600)
    await rec.start()
    yield rec
    await rec.close()


FlowFactory = Callable[..., Flow]


@pytest.fixture
def make_flow(recorder: Recorder) -> FlowFactory:
    """Flows as they reach the recorder: an identified caller's session decided (the session stage's job)."""

    def make(
        method: str = "GET",
        path: str = "/api/v1/namespaces/default/pods",
        query: str = "",
        *,
        body: bytes = b"",
        identity: Identity | None = ALICE,
        session: str = "s-1",
        command: str = "kubectl get",
        connection: str = "dev",
        token: str = "",
    ) -> Flow:
        headers = {"User-Agent": "kubectl/v1.32.4 (linux/amd64)"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if session:
            headers.update({"Kubectl-Session": session, "Kubectl-Command": command})
        request = make_mocked_request(method, path + (f"?{query}" if query else ""), headers=headers)
        flow = Flow(
            request=request,
            connection=SimpleNamespace(name=connection),  # type: ignore[arg-type]
            method=method,
            raw_path=path,
            query_string=query,
            headers=CIMultiDict({"Content-Type": "application/json"} if body else {}),
            body=body,
        )
        flow.identity = identity
        flow.info = parse_request_info(method, path, query)
        if identity is not None:
            flow.session_id = recorder.session_for(flow)
        return flow

    return make
