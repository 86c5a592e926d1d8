"""Sessions and events, written by one background task that commits many requests' events at once.

Each request's event waits in a queue; the writer takes everything queued, writes it in one
transaction, commits, and only then resolves each waiter. Under load a commit carries many events
(group commit), so recording costs one fsync per batch, not per request, and the commit-before-forward
promise still holds for every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.masking.scrub import scrubbed
from kubegate.recording.chain import NewEvent, append, canonical, lock_head, session_seal
from kubegate.recording.config import StoreConfig
from kubegate.store.engine import Store, StoreError, describe
from kubegate.store.tables import chain_checkpoints, events, session_groups, sessions

if TYPE_CHECKING:
    from kubegate.flow import Flow
    from kubegate.identity.model import Identity

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "error", "refused", "denied", "pending")
"""A session's outcome is its last answer's: a `kubectl apply` that GETs (404) and then creates (201) is ok.
`pending` while one of its requests waits for approval; the eventual answer replaces it."""

MCP = "mcp"
VIA = (MCP,)
"""What can open a session besides a Kubernetes API request (`sessions.via`): an MCP session's tool call."""

# Built once: constructing this statement (its CASEs) costs more than running it.
TOUCH_SESSIONS = (
    sa.update(sessions)
    .where(sessions.c.id == sa.bindparam("b_id"))
    .values(
        ended_at=sa.case(
            (sessions.c.ended_at < sa.bindparam("b_last"), sa.bindparam("b_last")), else_=sessions.c.ended_at
        ),
        requests=sessions.c.requests + sa.bindparam("b_count"),
        outcome=sa.case((sa.bindparam("b_outcome") != "", sa.bindparam("b_outcome")), else_=sessions.c.outcome),
    )
)

_KUBECTL_SESSION_MAX = 128
_KUBECTL_SESSION_INDEX_WHERE = sa.text("kubectl_session <> ''")
"""Literal, not a bound parameter: PostgreSQL cannot match a parameter to the partial index once it
switches a prepared statement to a generic plan (after five executions)."""
# Also built once, with the row as parameters: every kubectl invocation opens a session, and building these
# per session (and SQLAlchemy's cache key for each) was most of that commit's time.
_INSERT_SESSION = sa.insert(sessions)
_INSERT_KUBECTL_SESSION = {
    name: insert(sessions).on_conflict_do_nothing(
        index_elements=["kubectl_session", "username"], index_where=_KUBECTL_SESSION_INDEX_WHERE
    )
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_KUBECTL_SESSION_ID = sa.select(sessions.c.id).where(
    sessions.c.kubectl_session == sa.bindparam("b_kubectl_session"), sessions.c.username == sa.bindparam("b_username")
)
_INSERT_SESSION_GROUPS = sa.insert(session_groups)


@dataclass(slots=True)
class _Item:
    event: NewEvent
    future: asyncio.Future[int] | None
    outcome: str | None
    counts_request: bool


@dataclass(slots=True)
class _SessionState:
    id: str
    last_seen: float


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff: float
    through_seq: int
    events_removed: int
    sessions_removed: int


_STOP = object()


class Recorder:
    """Finds or creates sessions and records events into the store's hash chain."""

    def __init__(
        self,
        store: Store,
        *,
        max_body_bytes: int = 65536,
        retention_seconds: float | None = None,
        idle_seconds: float = 300.0,
        batch_max: int = 512,
        queue_max: int = 10_000,
        commit_timeout: float = 10.0,
        retention_interval: float = 3600.0,
        linger_seconds: float = 0.2,
        clock: Callable[[], float] = time.time,
        session_cache_max: int = 10_000,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.scrub = scrub or Masker(MaskingConfig()).scrub
        self.max_body_bytes = max_body_bytes
        self.retention_seconds = retention_seconds
        self.idle_seconds = idle_seconds
        self.commit_timeout = commit_timeout
        self.retention_interval = retention_interval
        self.linger_seconds = linger_seconds
        self.session_cache_max = session_cache_max
        """How many sessions are remembered in memory; the store has them all."""
        self.clock = clock
        self.commits = 0
        self.lost_events = 0
        self.healthy = True
        self.on_commit: Callable[[float], None] | None = None
        """Told each successful commit's duration in seconds (kubegate.metrics)."""
        self._batch_max = batch_max
        self._queue: asyncio.Queue[_Item | asyncio.Future[int] | object] = asyncio.Queue(maxsize=queue_max)
        self._sessions: dict[tuple[str, str, str], _SessionState] = {}
        self._new_sessions: dict[str, dict[str, Any]] = {}
        self._alias: dict[str, str] = {}
        self._writer: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @classmethod
    def from_config(cls, store: Store, config: StoreConfig, **kwargs: Any) -> Recorder:
        return cls(store, max_body_bytes=config.max_body_bytes, retention_seconds=config.retention, **kwargs)

    async def start(self) -> None:
        """Start the writer and, when a retention is set, the retention loop."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name="kubegate-recorder-writer")
        if self.retention_seconds and self._retention is None:
            self._retention = asyncio.create_task(self._retention_loop(), name="kubegate-recorder-retention")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closed = True
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        if self._writer is not None:
            await self._queue.put(_STOP)
            await self._writer

    # -- sessions -------------------------------------------------------------------------------------

    def session_for(self, flow: Flow) -> str:
        """The session a request belongs to: its kubectl invocation, or for clients that send no
        Kubectl-Session, the identity's recent requests on that connection (an idle window)."""
        return self.session(
            flow.identity,
            str(getattr(flow.connection, "name", "")),
            flow.kubectl_session,
            command=flow.kubectl_command,
            user_agent=flow.request.headers.get("User-Agent", ""),
            source=flow.request.remote or "",
        )

    def session(
        self,
        identity: Identity | None,
        connection: str,
        kubectl_session: str,
        *,
        command: str,
        user_agent: str,
        source: str,
        via: str = "",
    ) -> str:
        """The session of `kubectl_session` (else of the identity's idle window on `connection`); a new
        one takes the other fields. `via` names what opened it ("mcp"), for events recorded before any
        request (an MCP tool call)."""
        if via and via not in VIA:
            raise ValueError(f"unknown session origin {via!r}")
        now = self.clock()
        username = identity.username if identity else ""
        # A caller nobody identified gets no session of its own choosing: anyone could mint those.
        kubectl_session = kubectl_session[:_KUBECTL_SESSION_MAX] if identity else ""
        key = ("kubectl", kubectl_session, username) if kubectl_session else ("window", username, connection)
        state = self._sessions.pop(key, None)
        if state is not None and (kubectl_session or now - state.last_seen <= self.idle_seconds):
            state.last_seen = now
            state.id = self._alias.get(state.id, state.id)
            self._sessions[key] = state  # most recently used last: eviction takes the front
            return state.id
        if len(self._sessions) >= self.session_cache_max:
            self._prune(now)
        session_id = uuid.uuid4().hex
        self._new_sessions[session_id] = {
            "id": session_id,
            "kubectl_session": kubectl_session,
            "subject": identity.subject if identity else "",
            "username": username,
            "issuer": identity.issuer if identity else "",
            "groups": list(identity.groups) if identity else [],
            "claims": dict(identity.claims) if identity else {},
            "connection": connection,
            "command": self.scrub(command),
            "user_agent": self.scrub(user_agent),
            "source": source,
            "started_at": now,
            "ended_at": now,
            "outcome": "",
            "requests": 0,
            "via": via,
        }
        self._sessions[key] = _SessionState(session_id, now)
        return session_id

    def _prune(self, now: float) -> None:
        """Forget idle windows, then the least recently used sessions down to 90% of the cap: callers
        choose Kubectl-Session values freely. A kubectl session forgotten and seen again finds its row
        in the store (see _insert_session), so forgetting costs a lookup, never a split session."""
        horizon = now - self.idle_seconds
        for key in [k for k, s in self._sessions.items() if k[0] == "window" and s.last_seen < horizon]:
            del self._sessions[key]
        keep = self.session_cache_max * 9 // 10
        for key in list(itertools.islice(self._sessions, max(0, len(self._sessions) - keep))):
            del self._sessions[key]

    # -- events ---------------------------------------------------------------------------------------

    async def record_event(
        self,
        session_id: str | None,
        type: str,
        data: Mapping[str, Any],
        *,
        durable: bool,
        outcome: str | None = None,
        counts_request: bool = False,
    ) -> int:
        """Queue an event for the chain. durable=True waits until it is committed and returns its seq
        (raises StoreError when the store fails or does not answer within commit_timeout);
        durable=False returns 0 at once, and a failed write is logged and counted in `lost_events`."""
        if self._closed:
            raise StoreError("the recorder is shut down")
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        await self.start()
        info: dict[str, Any] = data["info"] if isinstance(data.get("info"), dict) else {}
        event = NewEvent(
            session_id=self._alias.get(session_id, session_id) if session_id else None,
            ts=self.clock(),
            type=type,
            data=canonical(scrubbed(dict(data), self.scrub)),
            verb=info.get("verb") or None,
            resource=info.get("resource") or None,
            namespace=info.get("namespace") or None,
        )
        future: asyncio.Future[int] | None = asyncio.get_running_loop().create_future() if durable else None
        await self._queue.put(_Item(event, future, outcome, counts_request))
        if future is None:
            return 0
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a caller's cancellation that
            # races the commit. The writer skips futures that are already done (cancelled).
            async with asyncio.timeout(self.commit_timeout):
                return await future
        except TimeoutError as exc:
            raise StoreError(f"the store did not confirm the write within {self.commit_timeout:g}s") from exc

    async def flush(self) -> None:
        """Wait until every event queued before this call was written (or its write failed)."""
        if self._writer is None or self._writer.done():
            return
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put(done)
        await done

    async def _linger(self) -> object | None:
        """Nobody waits on this batch (responses, stream chunks): hold it briefly so it shares the next
        request event's commit instead of costing a commit (an fsync) of its own."""
        try:
            async with asyncio.timeout(self.linger_seconds):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Item] = []
            flushes: list[asyncio.Future[int]] = []
            item = await self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, asyncio.Future):
                    flushes.append(item)
                else:
                    assert isinstance(item, _Item)
                    batch.append(item)
                if stopping or len(batch) >= self._batch_max:
                    break
                if self._queue.empty():
                    if flushes or any(i.future is not None for i in batch):
                        break
                    item = await self._linger()
                    if item is None:
                        break
                    continue
                item = self._queue.get_nowait()
            if batch:
                await self._commit(batch)
            for waiter in flushes:
                if not waiter.done():
                    waiter.set_result(0)

    async def _commit(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            seqs = await self._write(batch)
        except Exception as exc:
            self.healthy = False
            error = StoreError(describe(exc))
            lost = 0
            for item in batch:
                if item.future is None:
                    lost += 1
                elif not item.future.done():
                    item.future.set_exception(error)
            self.lost_events += lost
            log.error("recording a batch of %d events failed: %s", len(batch), error)
            return
        self.healthy = True
        self.commits += 1
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started)
        for item, seq in zip(batch, seqs, strict=True):
            if item.future is not None and not item.future.done():
                item.future.set_result(seq)

    async def _write(self, batch: list[_Item]) -> list[int]:
        new_ids = [sid for sid in dict.fromkeys(i.event.session_id for i in batch) if sid in self._new_sessions]
        write = _BatchWrite(
            self.store.dialect,
            [self._new_sessions[sid] for sid in new_ids],
            [(i.event, i.outcome, i.counts_request) for i in batch],
        )
        seqs = await self.store.write_sync(write.run)
        for sid in new_ids:
            del self._new_sessions[sid]
        self._alias.update(write.remap)
        while len(self._alias) > self.session_cache_max:  # oldest first; their flows are long over
            del self._alias[next(iter(self._alias))]
        return seqs

    # -- retention ------------------------------------------------------------------------------------

    async def apply_retention(self, now: float | None = None) -> RetentionResult | None:
        """Remove events older than the retention (a prefix of the chain) and sessions left without
        events, then record a checkpoint row and a `retention` event, so the rest still verifies."""
        if not self.retention_seconds:
            return None
        now = self.clock() if now is None else now
        result = await self.store.write_sync(functools.partial(_retain, now, now - self.retention_seconds))
        if result is not None:
            log.info(
                "retention removed %d events and %d sessions older than %s",
                result.events_removed,
                result.sessions_removed,
                result.cutoff,
            )
        return result

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retention_interval)
            try:
                await self.apply_retention()
            except Exception as exc:
                log.error("retention failed: %s", describe(exc))


@dataclass(eq=False)
class _BatchWrite:
    """One commit of the writer, run in the store's write thread: it reads only what it was given and
    leaves what the event loop needs (the seqs, sessions another replica had made first) on itself."""

    dialect: str
    new_sessions: list[dict[str, Any]]
    items: list[tuple[NewEvent, str | None, bool]]  # event, outcome, counts as a request
    remap: dict[str, str] = field(default_factory=dict)

    def run(self, conn: Connection) -> list[int]:
        head = lock_head(conn)
        seals: list[NewEvent] = []
        for row in self.new_sessions:
            actual = _insert_session(conn, self.dialect, row)
            if actual == row["id"]:
                seals.append(NewEvent(actual, row["started_at"], "session", session_seal(row)))
            else:
                self.remap[row["id"]] = actual
        chained = [
            replace(ev, session_id=self.remap.get(s, s) if (s := ev.session_id) else None) for ev, _, _ in self.items
        ]
        seqs = append(conn, head, seals + chained)
        outcomes = [(outcome, counts) for _, outcome, counts in self.items]
        _touch_sessions(conn, [(ev, *rest) for ev, rest in zip(chained, outcomes, strict=True)])
        return seqs[len(seals) :]


def _insert_session(conn: Connection, dialect: str, row: dict[str, Any]) -> str:
    """Insert a session; for a kubectl session another replica may have inserted first: use theirs."""
    if not row["kubectl_session"]:
        conn.execute(_INSERT_SESSION, row)
    else:
        conn.execute(_INSERT_KUBECTL_SESSION[dialect], row)
        existing = conn.execute(
            _KUBECTL_SESSION_ID, {"b_kubectl_session": row["kubectl_session"], "b_username": row["username"]}
        ).one()
        if existing.id != row["id"]:
            return str(existing.id)
    if row["groups"]:
        conn.execute(
            _INSERT_SESSION_GROUPS, [{"session_id": row["id"], "name": g} for g in dict.fromkeys(row["groups"])]
        )
    return str(row["id"])


def _touch_sessions(conn: Connection, chained: list[tuple[NewEvent, str | None, bool]]) -> None:
    """Advance each touched session's end time, request count and outcome (the last one given)."""
    touched: dict[str, tuple[float, int, str | None]] = {}
    for ev, item_outcome, counts_request in chained:
        if ev.session_id is None:
            continue
        last, count, outcome = touched.get(ev.session_id, (ev.ts, 0, None))
        outcome = item_outcome or outcome
        touched[ev.session_id] = (max(last, ev.ts), count + counts_request, outcome)
    if not touched:
        return
    conn.execute(
        TOUCH_SESSIONS,
        [
            {"b_id": sid, "b_last": last, "b_count": count, "b_outcome": outcome or ""}
            for sid, (last, count, outcome) in touched.items()
        ],
    )


def _retain(now: float, cutoff: float, conn: Connection) -> RetentionResult | None:
    """The retention transaction (see Recorder.apply_retention)."""
    head = lock_head(conn)
    first_kept = conn.execute(sa.select(sa.func.min(events.c.seq)).where(events.c.ts >= cutoff)).scalar()
    through = first_kept - 1 if first_kept is not None else head[0]
    done = conn.execute(sa.select(sa.func.max(chain_checkpoints.c.through_seq))).scalar() or 0
    if through <= done:
        return None
    last_hash = conn.execute(sa.select(events.c.hash).where(events.c.seq == through)).scalar()
    if last_hash is None:
        raise StoreError(f"event {through} is missing: run kubegate audit verify before retention")
    removed = conn.execute(sa.delete(events).where(events.c.seq <= through)).rowcount
    orphaned = sa.select(sessions.c.id).where(
        sessions.c.ended_at < cutoff, ~sa.exists().where(events.c.session_id == sessions.c.id)
    )
    ids = list(conn.execute(orphaned).scalars())
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(sa.delete(session_groups).where(session_groups.c.session_id.in_(chunk)))
        conn.execute(sa.delete(sessions).where(sessions.c.id.in_(chunk)))
    conn.execute(
        sa.insert(chain_checkpoints).values(
            created_at=now,
            cutoff=cutoff,
            through_seq=through,
            last_hash=last_hash,
            events_removed=removed,
            sessions_removed=len(ids),
        )
    )
    note = {
        "through_seq": through,
        "last_hash": last_hash,
        "cutoff": cutoff,
        "events_removed": removed,
        "sessions_removed": len(ids),
    }
    append(conn, head, [NewEvent(None, now, "retention", canonical(note))])
    return RetentionResult(cutoff, through, removed, len(ids))
