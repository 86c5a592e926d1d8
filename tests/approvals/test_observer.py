"""The service tells its observer of each request it creates and each decision: the metrics count them
and time each decision."""

from __future__ import annotations

import asyncio

from kubegate.approvals.service import ApprovalService
from kubegate.metrics import Metrics
from tests.approvals.builders import BOB, Clock, approval_stage, held


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
