"""Fixtures for approval tests: a store on SQLite and on a fresh PostgreSQL database, and a service
with a settable clock and its own recorder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from kubegate.approvals.config import ApprovalsConfig
from kubegate.approvals.service import ApprovalService
from kubegate.policy.engine import PolicyEngine
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store
from tests.approvals.builders import Clock, engine


@pytest.fixture
def clock() -> Clock:
    return Clock()


ServiceFactory = Callable[..., ApprovalService]


@pytest.fixture
async def make_service(clock: Clock) -> AsyncIterator[ServiceFactory]:
    made: list[tuple[ApprovalService, Recorder]] = []

    def make(
        store: Store, *, policy: PolicyEngine | None = None, config: ApprovalsConfig | None = None, **kwargs: Any
    ) -> ApprovalService:
        recorder = Recorder(store, clock=clock)
        service = ApprovalService(
            store,
            recorder,
            policy or engine(),
            config or ApprovalsConfig(),
            connections=("dev", "prod"),
            clock=clock,
            **kwargs,
        )
        made.append((service, recorder))
        return service

    yield make
    for service, recorder in made:
        await service.close()
        await recorder.close()


@pytest.fixture
async def service(store: Store, make_service: ServiceFactory) -> ApprovalService:
    svc = make_service(store)
    await svc.start()
    return svc
