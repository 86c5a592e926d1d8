"""Fixtures for recording tests: a store on SQLite and on a fresh PostgreSQL database, and flows."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from sqlalchemy.engine import make_url

from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import parse_request_info
from kubegate.proxy.flow import Flow
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store

PG_URL = os.environ.get("KUBEGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

ALICE = Identity(issuer="https://token.actions.githubusercontent.com", subject="repo:acme/app:ref:refs/heads/main",
                 username="gh#repo:acme/app", groups=("ci-agents", "acme"),
                 claims={"repository": "acme/app", "workflow": "deploy", "run_id": "42", "actor": "alice"})


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own for one test, dropped afterwards. No server: the test fails."""
    base = make_url(PG_URL)
    name = f"kubegate_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'kubegate.db'}"
        return
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = await Store.open(store_url)
    yield s
    await s.close()


@pytest.fixture
async def recorder(store: Store) -> AsyncIterator[Recorder]:
    rec = Recorder(store, max_body_bytes=64, retention_seconds=3600)
    await rec.start()
    yield rec
    await rec.close()


FlowFactory = Callable[..., Flow]


@pytest.fixture
def make_flow() -> FlowFactory:
    def make(method: str = "GET", path: str = "/api/v1/namespaces/default/pods", query: str = "",
             *, body: bytes = b"", identity: Identity | None = ALICE, session: str = "s-1",
             command: str = "kubectl get", connection: str = "dev") -> Flow:
        headers = {"User-Agent": "kubectl/v1.32.4 (linux/amd64)"}
        if session:
            headers.update({"Kubectl-Session": session, "Kubectl-Command": command})
        request = make_mocked_request(method, path + (f"?{query}" if query else ""), headers=headers)
        flow = Flow(request=request, connection=SimpleNamespace(name=connection),  # type: ignore[arg-type]
                    method=method, raw_path=path, query_string=query,
                    headers=CIMultiDict({"Content-Type": "application/json"} if body else {}), body=body)
        flow.identity = identity
        flow.info = parse_request_info(method, path, query)
        return flow

    return make
