"""Two gateways sharing one store: a request held by one is released when approved through the other.

Each gateway has its own Store (own connection pool and, on PostgreSQL, its own LISTEN connection),
as two processes would. On PostgreSQL the waiter's polling is set to 30 s, so a release within the
5 s bound can only have come from LISTEN/NOTIFY; on SQLite, polling is the mechanism.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from kubegate.approvals.signals import DecisionSignals
from kubegate.store.engine import Store
from tests.approvals.builders import BOB, approval_stage, held
from tests.approvals.conftest import ServiceFactory
from tests.databases import fresh_pg_database


@pytest.fixture
async def pg_stores() -> AsyncIterator[tuple[Store, Store]]:
    async with fresh_pg_database() as url:
        first, second = await Store.open(url), await Store.open(url)
        yield first, second
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_postgres_notify_releases_the_request_held_by_the_other_gateway(
    pg_stores: tuple[Store, Store], make_service: ServiceFactory
) -> None:
    store_a, store_b = pg_stores
    slow = DecisionSignals(store_a, poll_interval=30, listening_poll_interval=30)
    gateway_a = make_service(store_a, signals=slow)
    gateway_b = make_service(store_b)
    await gateway_a.start()
    async with asyncio.timeout(10):
        await slow.wait_listening()
    task, request_id = await held(approval_stage(gateway_a), gateway_a)
    await gateway_b.approve(request_id, BOB)
    await asyncio.wait_for(task, 5)


@pytest.mark.postgres
async def test_postgres_listener_reconnects_and_catches_up(
    pg_stores: tuple[Store, Store], make_service: ServiceFactory
) -> None:
    store_a, store_b = pg_stores
    slow = DecisionSignals(store_a, poll_interval=30, listening_poll_interval=30)
    gateway_a = make_service(store_a, signals=slow)
    gateway_b = make_service(store_b)
    await gateway_a.start()
    async with asyncio.timeout(10):
        await slow.wait_listening()
    task, request_id = await held(approval_stage(gateway_a), gateway_a)
    async with store_b.write() as conn:  # the database drops gateway A's LISTEN connection
        killed = (
            (
                await conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
                        "AND datname = current_database()"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert killed == [True]
    await gateway_b.approve(request_id, BOB)  # decided while A may not be listening
    await asyncio.wait_for(task, 10)  # A reconnects, wakes every waiter, and they re-read
    async with asyncio.timeout(10):
        await slow.wait_listening()


async def test_sqlite_polling_releases_the_request_held_by_the_other_gateway(
    tmp_path: Path, make_service: ServiceFactory
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store_a, store_b = await Store.open(url), await Store.open(url)
    try:
        gateway_a = make_service(store_a, signals=DecisionSignals(store_a, poll_interval=0.05))
        gateway_b = make_service(store_b)
        task, request_id = await held(approval_stage(gateway_a), gateway_a)
        await gateway_b.approve(request_id, BOB)
        await asyncio.wait_for(task, 5)
    finally:
        await store_a.close()
        await store_b.close()
