"""Streaming export: every committed event, at least once, to each configured sink.

The events table is the outbox: an event is in it once its commit returned, before the request it
records was forwarded. Each sink has a cursor row (`export_cursors`) holding the last seq it took; the
exporter reads the next batch after the cursor, hands it to the sink, and moves the cursor only after
the sink said it has it. A crash between the two repeats the batch (at least once, never none). Of several
replicas, the one holding a sink's lease (on its cursor row, renewed each round) exports it; the others
stand by and take over when the lease runs out, so a sink is not fed once per replica. Export
reads the store on its own schedule and never touches the recorder, so a slow or broken sink never
holds a request up; it only grows the sink's lag, which is a metric and a /readyz detail.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge

from kubegate.audit.k8sevent import Converter, Row
from kubegate.audit.sinks import Batch, Sink
from kubegate.store.engine import Store, describe
from kubegate.store.tables import chain_head, events, export_cursors, sessions

log = logging.getLogger(__name__)
_SESSION_COLUMNS = ("username", "groups", "claims", "connection", "user_agent", "source")
_LATER_STAGES = {"response": "request_seq", "refused": "request_seq", "end": "request_seq", "tool_result": "call_seq"}
"""Event types whose first stage may have been exported before, and the field naming its seq."""


class ExportMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "kubegate_export_lag_events", "Committed events a sink has not taken yet", ["sink"], registry=registry
        )
        self.exported = Counter("kubegate_export_events", "Audit events a sink has taken", ["sink"], registry=registry)
        self.failures = Counter(
            "kubegate_export_failures", "Batches a sink did not take (retried)", ["sink"], registry=registry
        )
        self.lost = Counter(
            "kubegate_export_lost_events",
            "Events retention removed before a sink took them",
            ["sink"],
            registry=registry,
        )


def _select_rows() -> sa.Select[Any]:
    return sa.select(
        events.c.seq,
        events.c.hash,
        events.c.session_id,
        events.c.ts,
        events.c.type,
        events.c.data,
        sessions.c.id.label("sid"),
        *(sessions.c[name] for name in _SESSION_COLUMNS),
    ).select_from(events.outerjoin(sessions, sessions.c.id == events.c.session_id))


def _row(r: sa.Row[Any]) -> Row:
    session = {name: getattr(r, name) for name in _SESSION_COLUMNS} if r.sid is not None else None
    return Row(r.seq, r.hash, r.session_id, r.ts, r.type, r.data, session)


class Exporter:
    def __init__(
        self,
        store: Store,
        sink: Sink,
        *,
        batch_max: int = 500,
        interval: float = 1.0,
        retry_max_interval: float = 60.0,
        lag_alarm: int = 10_000,
        lease_seconds: float = 30.0,
        metrics: ExportMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sink = sink
        self.batch_max = batch_max
        self.interval = interval
        self.retry_max_interval = retry_max_interval
        self.lag_alarm = lag_alarm
        self.metrics = metrics or ExportMetrics(CollectorRegistry())
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex
        self.standby = False
        self.lag = 0
        self.error = ""
        self.lost = 0
        self._converter = Converter()

    async def cursor(self) -> int:
        async with self.store.read() as conn:
            return (
                await conn.execute(sa.select(export_cursors.c.seq).where(export_cursors.c.sink == self.sink.name))
            ).scalar() or 0

    async def _claim(self) -> bool:
        """Take or renew this sink's lease; False while another process holds it."""
        now = self.clock()
        async with self.store.write() as conn:
            claimed = await conn.execute(
                sa.update(export_cursors)
                .where(
                    export_cursors.c.sink == self.sink.name,
                    sa.or_(export_cursors.c.owner == self.owner, export_cursors.c.lease_until < now),
                )
                .values(owner=self.owner, lease_until=now + self.lease_seconds)
            )
            if claimed.rowcount:
                return True
            exists = (
                await conn.execute(sa.select(export_cursors.c.sink).where(export_cursors.c.sink == self.sink.name))
            ).first()
            if exists is not None:
                return False
            # A new sink starts at the oldest event the store holds: what retention removed before it existed
            # was never its to lose.
            first = (await conn.execute(sa.select(sa.func.min(events.c.seq)))).scalar()
            start = first - 1 if first is not None else (await conn.execute(sa.select(chain_head.c.seq))).scalar_one()
            await conn.execute(
                sa.insert(export_cursors).values(
                    sink=self.sink.name,
                    seq=start,
                    updated_at=now,
                    owner=self.owner,
                    lease_until=now + self.lease_seconds,
                )
            )
            return True

    async def release(self) -> None:
        """Give the lease up (a clean shutdown), so a restarted or other process resumes at once; after a
        crash the lease runs out instead."""
        async with self.store.write() as conn:
            await conn.execute(
                sa.update(export_cursors)
                .where(export_cursors.c.sink == self.sink.name, export_cursors.c.owner == self.owner)
                .values(lease_until=0)
            )

    async def step(self) -> int:
        """Export the next batch after the cursor; how many events it covered (0: caught up, or standing by)."""
        self.standby = not await self._claim()
        cursor = await self.cursor()
        if self.standby:
            async with self.store.read() as conn:
                self._set_lag((await conn.execute(sa.select(chain_head.c.seq))).scalar_one() - cursor)
            return 0
        async with self.store.read() as conn:
            rows = [
                _row(r)
                for r in await conn.execute(
                    _select_rows().where(events.c.seq > cursor).order_by(events.c.seq).limit(self.batch_max)
                )
            ]
            head = (await conn.execute(sa.select(chain_head.c.seq))).scalar() or 0
            await self._recall_requests(conn, rows)
        if not rows:
            self._set_lag(head - cursor)
            return 0
        if rows[0].seq > cursor + 1:
            missed = rows[0].seq - cursor - 1
            self.lost += missed
            self.metrics.lost.labels(self.sink.name).inc(missed)
            log.error(
                "export sink %s: events %d..%d were removed by retention before it took them",
                self.sink.name,
                cursor + 1,
                rows[0].seq - 1,
            )
        self._set_lag(head - cursor)
        converted = [e for e in (self._converter.convert(r) for r in rows) if e is not None]
        if converted:
            await self.sink.send(Batch(rows[0].seq, rows[-1].seq, converted))
            self.metrics.exported.labels(self.sink.name).inc(len(converted))
        await self._advance(rows[-1].seq)
        self._set_lag(head - rows[-1].seq)
        return len(rows)

    async def _recall_requests(self, conn: Any, rows: list[Row]) -> None:
        """The request events (and tool calls), taken before the cursor, of later stages in this batch."""
        seqs = set()
        for row in rows:
            if row.type in _LATER_STAGES:
                seq = orjson.loads(row.data).get(_LATER_STAGES[row.type])
                if isinstance(seq, int) and seq < rows[0].seq:
                    seqs.add(seq)
        if seqs:
            for r in await conn.execute(_select_rows().where(events.c.seq.in_(sorted(seqs))).order_by(events.c.seq)):
                self._converter.remember(_row(r))

    async def _advance(self, seq: int) -> None:
        """Move the cursor forward, never back (a process whose lease ran out may finish a batch late)."""
        async with self.store.write() as conn:
            await conn.execute(
                sa.update(export_cursors)
                .where(export_cursors.c.sink == self.sink.name, export_cursors.c.seq < seq)
                .values(seq=seq, updated_at=self.clock())
            )

    def _set_lag(self, lag: int) -> None:
        self.lag = max(0, lag)
        self.metrics.lag.labels(self.sink.name).set(self.lag)

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                covered = await self.step()
            except Exception as exc:
                failures += 1
                self.error = describe(exc)
                self.metrics.failures.labels(self.sink.name).inc()
                log.error("export sink %s failed (attempt %d, retrying): %s", self.sink.name, failures, self.error)
                await asyncio.sleep(min(self.retry_max_interval, self.interval * 2 ** min(failures, 16)))
                continue
            failures, self.error = 0, ""
            if covered < self.batch_max:
                await asyncio.sleep(self.interval)

    def status(self) -> dict[str, Any]:
        state = (
            "failing"
            if self.error
            else "standby"
            if self.standby
            else "lagging"
            if self.lag >= self.lag_alarm
            else "ok"
        )
        out: dict[str, Any] = {"state": state, "lag": self.lag}
        if self.error:
            out["error"] = self.error
        if self.lost:
            out["lost_to_retention"] = self.lost
        return out
