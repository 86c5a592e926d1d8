"""Wake the requests held open for a decision, whichever gateway process made it.

A decision commits a PostgreSQL NOTIFY with the request id; every process LISTENs on one channel
(on its own asyncpg connection, reconnecting if it drops) and wakes its waiters for that id. SQLite
has no notifications, and a LISTEN connection can be down, so every waiter also re-reads its request
every `poll_interval` seconds: a decision is never missed, only noticed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kubegate.store.engine import Store, describe

log = logging.getLogger(__name__)
CHANNEL = "kubegate_approvals"
RECONNECT_DELAY = 1.0


class DecisionSignals:
    def __init__(self, store: Store, *, poll_interval: float = 0.5, listening_poll_interval: float = 5.0) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.listening_poll_interval = listening_poll_interval
        self.listening = False
        self._events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def uses_notify(self) -> bool:
        return self.store.dialect == "postgresql"

    async def start(self) -> None:
        if self.uses_notify and self._task is None:
            self._task = asyncio.create_task(self._listen(), name="kubegate-approval-listener")

    async def wait_listening(self) -> None:
        """Until the LISTEN connection is up (PostgreSQL only); callers bound it with asyncio.timeout."""
        await self._connected.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @staticmethod
    async def publish(conn: AsyncConnection, request_id: str) -> None:
        """Inside the deciding transaction: PostgreSQL delivers the NOTIFY when it commits."""
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_notify(:channel, :id)"), {"channel": CHANNEL, "id": request_id})

    def event(self, request_id: str) -> asyncio.Event:
        """Take this before reading the request, then wait on it: a wake in between is not lost."""
        return self._events.setdefault(request_id, asyncio.Event())

    def wake(self, request_id: str) -> None:
        event = self._events.pop(request_id, None)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        for request_id in list(self._events):
            self.wake(request_id)

    async def wait(self, event: asyncio.Event, at_most: float) -> None:
        """Until woken, or the poll interval (or `at_most` seconds, if sooner) has passed."""
        interval = self.listening_poll_interval if self.listening else self.poll_interval
        # asyncio.timeout, not wait_for: on 3.11 wait_for can turn a cancellation that races its timeout
        # into TimeoutError, and a waiter whose client left would then poll on until the request expires.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min(interval, at_most))):
                await event.wait()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.wake(payload)

    async def _listen(self) -> None:
        import asyncpg  # PostgreSQL only: a SQLite gateway never loads it

        dsn = self.store.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self.listening = True
                self._connected.set()
                self.wake_all()  # anything decided while we were not listening
                await lost.wait()
                log.warning("the approval LISTEN connection closed; polling until it is back")
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("cannot LISTEN for approval decisions (polling meanwhile): %s", describe(exc))
            finally:
                self.listening = False
                self._connected.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(RECONNECT_DELAY)
