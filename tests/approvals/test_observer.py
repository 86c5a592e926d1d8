"""The service tells its observer of each request it creates and each decision: the metrics count them
and time each decision."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from kubegate.approvals.service import ApprovalService
from kubegate.metrics import Metrics
from kubegate.store.engine import Store
from tests.approvals.builders import BOB, Clock, approval_stage, cancel, held
from tests.approvals.conftest import ServiceFactory


async def test_requests_and_decisions_are_counted_and_timed(service: ApprovalService, clock: Clock) -> None:
    metrics = Metrics()
    metrics.watch_approvals(service)
    task, first = await held(approval_stage(service), service)
    clock.now += 90
    await service.approve(first, BOB)
    await asyncio.wait_for(task, 5)
    task, second = await held(approval_stage(service), service, path="/api/v1/namespaces/pr-43")
    await service.deny(second, BOB, "not now")
    await asyncio.gather(task, return_exceptions=True)
    value = metrics.registry.get_sample_value
    assert value("kubegate_approval_requests_total") == 2
    assert value("kubegate_approval_decisions_total", {"outcome": "approved"}) == 1
    assert value("kubegate_approval_decisions_total", {"outcome": "denied"}) == 1
    assert value("kubegate_approval_decision_seconds_count") == 2
    assert value("kubegate_approval_decision_seconds_sum") >= 90


async def test_pending_requests_are_read_from_the_store_so_every_replica_counts_them(
    service: ApprovalService, store_url: str, make_service: ServiceFactory, clock: Clock
) -> None:
    other_store = await Store.open(store_url)  # another replica: its own connection, no shared memory
    try:
        other = make_service(other_store)
        metrics = Metrics()
        metrics.watch_approvals(other)
        pending = lambda: metrics.registry.get_sample_value("kubegate_approvals_pending", {"kind": "request"})  # noqa: E731
        await metrics.refresh()
        assert pending() == 0
        task, first = await held(approval_stage(service), service)
        second_task, _ = await held(approval_stage(service), service, path="/api/v1/namespaces/pr-43")
        await metrics.refresh()
        assert pending() == 2
        assert metrics.registry.get_sample_value("kubegate_approvals_pending", {"kind": "scope"}) == 0
        await service.approve(first, BOB)
        await asyncio.wait_for(task, 5)
        await metrics.refresh()
        assert pending() == 1
        clock.now += 24 * 3600  # past every timeout: an expired request waits for nobody
        await metrics.refresh()
        assert pending() == 0
        await cancel(second_task)
    finally:
        await other_store.close()


async def test_the_pending_gauge_says_unknown_when_the_store_cannot_be_read(
    tmp_path: Path, make_service: ServiceFactory
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    metrics = Metrics()
    metrics.watch_approvals(make_service(store))
    await store.close()
    (tmp_path / "k.db").unlink()
    (tmp_path / "k.db").mkdir()  # nothing SQLite can open
    await metrics.refresh()
    assert math.isnan(metrics.registry.get_sample_value("kubegate_approvals_pending", {"kind": "request"}))
