"""The hash chain: every event carries the hash of the one before it, so an edit, a removal or a
reordering of stored events shows when the chain is walked again.

An event's hash is sha256 over canonical JSON (sorted keys) of its fields and `prev_hash`; its stored
`data` text is hashed byte for byte. `seq` is not hashed: the chain itself says the order, and `seq`
only lets `verify` name where the order was broken. Appends lock the single `chain_head` row, so
several replicas on one PostgreSQL extend one chain. Appends are synchronous: they run inside
`Store.write_sync` transactions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from kubegate.store.tables import GENESIS_HASH, chain_checkpoints, chain_head, events, sessions

SESSION_FIELDS = (
    "kubectl_session",
    "subject",
    "username",
    "issuer",
    "groups",
    "claims",
    "connection",
    "command",
    "user_agent",
    "source",
    "started_at",
)
"""The session columns that never change after creation; a `session` event seals them."""
SEALED_WHEN_SET = ("via",)
"""Sealed too, but only when not empty: added later, so the seals of older sessions still verify."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to be chained: `data` is already canonical JSON text."""

    session_id: str | None
    ts: float
    type: str
    data: str
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None


def canonical(value: object) -> str:
    """The one JSON spelling of a value (sorted keys, no spaces) that hashes are computed over."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()


def event_hash(ev: NewEvent, prev_hash: str) -> str:
    envelope = {
        "session_id": ev.session_id,
        "ts": ev.ts,
        "type": ev.type,
        "verb": ev.verb,
        "resource": ev.resource,
        "namespace": ev.namespace,
        "prev_hash": prev_hash,
        "data": orjson.Fragment(ev.data.encode()),
    }
    return hashlib.sha256(orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)).hexdigest()


def session_seal(row: dict[str, object]) -> str:
    """The data of the `session` event that seals a session's identity fields into the chain."""
    sealed = {name: row[name] for name in SESSION_FIELDS}
    sealed.update({name: row[name] for name in SEALED_WHEN_SET if row.get(name)})
    return canonical(sealed)


# Built once: building and cache-keying these per commit cost more than running them (the writer's hot path).
_SELECT_HEAD = sa.select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == 1).with_for_update()
_INSERT_EVENTS = sa.insert(events)
_UPDATE_HEAD = (
    sa.update(chain_head).where(chain_head.c.id == 1).values(seq=sa.bindparam("b_seq"), hash=sa.bindparam("b_hash"))
)


def lock_head(conn: Connection) -> tuple[int, str]:
    """Read the chain head FOR UPDATE (PostgreSQL; SQLite's write lock is already held), so concurrent
    appenders, in this process or another replica, queue here instead of forking the chain.
    Call it first in a write transaction, before touching other rows, so lock order is always the same."""
    head = conn.execute(_SELECT_HEAD).one()
    return head.seq, head.hash


def append(conn: Connection, head: tuple[int, str], batch: Sequence[NewEvent]) -> list[int]:
    """Chain and insert `batch` after `head` (from `lock_head`, same transaction); return each seq."""
    seq, prev = head
    rows, seqs = [], []
    for ev in batch:
        seq += 1
        digest = event_hash(ev, prev)
        rows.append(
            {
                "seq": seq,
                "session_id": ev.session_id,
                "ts": ev.ts,
                "type": ev.type,
                "verb": ev.verb,
                "resource": ev.resource,
                "namespace": ev.namespace,
                "data": ev.data,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        seqs.append(seq)
        prev = digest
    if rows:
        conn.execute(_INSERT_EVENTS, rows)
        conn.execute(_UPDATE_HEAD, {"b_seq": seq, "b_hash": prev})
    return seqs


@dataclass(frozen=True, slots=True)
class ChainProblem:
    """The first place the stored chain differs from what kubegate wrote."""

    kind: str  # edited | removed | reordered | head | checkpoint | session
    seq: int | None
    message: str
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChainReport:
    events: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str
    problem: ChainProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


async def _latest_checkpoint(conn: AsyncConnection) -> sa.Row[Any] | None:
    return (
        await conn.execute(sa.select(chain_checkpoints).order_by(chain_checkpoints.c.through_seq.desc()).limit(1))
    ).first()


async def verify(conn: AsyncConnection, *, batch_size: int = 2000) -> ChainReport:
    """Walk the whole chain in seq order and report the first event edited, removed or reordered."""
    checkpoint = await _latest_checkpoint(conn)
    expected_prev = checkpoint.last_hash if checkpoint else GENESIS_HASH
    expected_seq = (checkpoint.through_seq if checkpoint else 0) + 1
    checkpoint_confirmed = checkpoint is None
    seals: dict[str, str] = {}
    count, first_seq, last_seq, last_hash = 0, None, None, expected_prev

    def report(problem: ChainProblem | None) -> ChainReport:
        return ChainReport(count, first_seq, last_seq, last_hash, problem)

    result = await conn.stream(sa.select(events).order_by(events.c.seq).execution_options(yield_per=batch_size))
    async for row in result:
        ev = NewEvent(row.session_id, row.ts, row.type, row.data, row.verb, row.resource, row.namespace)
        if event_hash(ev, row.prev_hash) != row.hash:
            await result.close()
            return report(
                ChainProblem(
                    "edited",
                    row.seq,
                    f"event {row.seq} was edited: its content no longer matches its hash",
                    row.session_id,
                )
            )
        if row.prev_hash != expected_prev:
            await result.close()
            return report(await _broken_link(conn, row, expected_seq))
        if row.type == "retention" and checkpoint is not None:
            data = orjson.loads(row.data)
            checkpoint_confirmed |= (
                data.get("through_seq") == checkpoint.through_seq and data.get("last_hash") == checkpoint.last_hash
            )
        if row.type == "session" and row.session_id:
            seals[row.session_id] = row.data
        count += 1
        first_seq = row.seq if first_seq is None else first_seq
        last_seq, last_hash = row.seq, row.hash
        expected_prev, expected_seq = row.hash, row.seq + 1

    head = (await conn.execute(sa.select(chain_head).where(chain_head.c.id == 1))).first()
    if head is None:
        return report(ChainProblem("head", None, "the chain head row is missing"))
    if (head.seq, head.hash) != (expected_seq - 1, expected_prev):
        if head.seq >= expected_seq:
            return report(
                ChainProblem(
                    "removed", expected_seq, f"events {expected_seq}..{head.seq} were removed from the end of the chain"
                )
            )
        return report(
            ChainProblem(
                "head",
                head.seq,
                f"the chain head (seq {head.seq}) does not match the last event (seq {expected_seq - 1})",
            )
        )
    if not checkpoint_confirmed:
        assert checkpoint is not None
        return report(
            ChainProblem(
                "checkpoint",
                checkpoint.through_seq,
                "the retention checkpoint through event "
                f"{checkpoint.through_seq} has no matching retention event in the chain",
            )
        )
    return report(await _check_sessions(conn, seals, checkpoint.cutoff if checkpoint else None))


async def _broken_link(conn: AsyncConnection, row: sa.Row[Any], expected_seq: int) -> ChainProblem:
    if row.seq > expected_seq:
        missing = f"event {expected_seq}" if row.seq == expected_seq + 1 else f"events {expected_seq}..{row.seq - 1}"
        return ChainProblem(
            "removed", expected_seq, f"{missing} removed: event {row.seq} follows a missing event", row.session_id
        )
    origin = (await conn.execute(sa.select(events.c.seq).where(events.c.hash == row.prev_hash))).first()
    if origin is not None:
        return ChainProblem(
            "reordered",
            row.seq,
            f"event {row.seq} is out of order: it was recorded right after the event now at seq {origin.seq}",
            row.session_id,
        )
    before = row.seq - 1
    return ChainProblem(
        "edited",
        before,
        f"event {before} was edited and its hash rewritten: event {row.seq} still links to its original hash",
    )


async def _check_sessions(conn: AsyncConnection, seals: dict[str, str], cutoff: float | None) -> ChainProblem | None:
    cols = [sessions.c.id, *(sessions.c[name] for name in (*SESSION_FIELDS, *SEALED_WHEN_SET))]
    result = await conn.stream(sa.select(*cols).order_by(sessions.c.started_at, sessions.c.id))
    async for row in result:
        seal = seals.get(row.id)
        if seal is None:
            if cutoff is not None and row.started_at < cutoff:
                continue  # its session event went with an earlier retention cut
            await result.close()
            return ChainProblem(
                "session",
                None,
                f"session {row.id} has no session event in the chain: it was "
                "added outside kubegate or its session event was removed",
                row.id,
            )
        if session_seal(dict(row._mapping)) != seal:
            await result.close()
            return ChainProblem(
                "session",
                None,
                f"session {row.id} was edited: its identity fields no longer match its session event",
                row.id,
            )
    return None
