from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from kubegate.recording import chain
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store, StoreError
from kubegate.store.tables import chain_checkpoints, events, session_groups, sessions
from tests.recording.conftest import ALICE, FlowFactory


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _rows(store: Store, table: sa.Table, *where: sa.ColumnElement[bool]) -> list[sa.Row]:
    async with store.read() as conn:
        return list((await conn.execute(sa.select(table).where(*where))).all())


async def test_concurrent_events_share_commits_and_each_waits_for_its_commit(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    commits = 0

    def count(_conn: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(Engine, "commit", count)  # every engine: the store writes on its own thread on SQLite
    sid = recorder.session_for(make_flow())
    committed_when_returned: list[bool] = []

    async def one(i: int) -> None:
        seq = await recorder.record_event(sid, "request", {"n": i}, durable=True)
        async with store.read() as conn:  # another connection sees it: it was committed, not just written
            found = (await conn.execute(sa.select(events.c.seq).where(events.c.seq == seq))).first()
        committed_when_returned.append(found is not None)

    await asyncio.gather(*(one(i) for i in range(300)))
    event.remove(Engine, "commit", count)
    assert committed_when_returned == [True] * 300
    assert 1 <= commits <= 30, commits
    assert recorder.commits == commits
    rows = await _rows(store, events, events.c.type == "request")
    assert sorted(r.seq for r in rows) == list(range(2, 302))  # seq 1 is the session seal


async def test_events_nobody_waits_for_share_the_next_request_commit(
    recorder: Recorder, make_flow: FlowFactory
) -> None:
    sid = recorder.session_for(make_flow())
    await recorder.record_event(sid, "request", {"n": 0}, durable=True)
    before = recorder.commits
    await recorder.record_event(sid, "response", {"n": 0}, durable=False)
    await asyncio.sleep(recorder.linger_seconds / 4)
    await recorder.record_event(sid, "request", {"n": 1}, durable=True)
    assert recorder.commits == before + 1
    await recorder.record_event(sid, "response", {"n": 1}, durable=False)
    await asyncio.sleep(recorder.linger_seconds * 2)
    assert recorder.commits == before + 2, "a lone response is still written after the linger"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_waiter_is_not_released_before_its_commit(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    sid = recorder.session_for(make_flow())
    await recorder.record_event(sid, "request", {"n": 0}, durable=True)
    blocker = sqlite3.connect(str(store.url.database), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer cannot commit while this is held
    try:
        waiting = asyncio.create_task(recorder.record_event(sid, "request", {"n": 1}, durable=True))
        await asyncio.sleep(0.2)
        assert not waiting.done()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    seq = await waiting
    assert [r.seq for r in await _rows(store, events, events.c.seq == seq)] == [seq]


async def test_sessions_follow_kubectl_session_and_identity(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    first = recorder.session_for(make_flow(session="k1"))
    assert recorder.session_for(make_flow(session="k1")) == first
    assert recorder.session_for(make_flow(session="k2")) != first
    assert recorder.session_for(make_flow(session="k1", identity=None)) != first
    await recorder.record_event(
        first,
        "request",
        {"info": {"verb": "list", "resource": "pods", "namespace": "default"}},
        durable=True,
        counts_request=True,
    )
    await recorder.record_event(first, "response", {"status": 404}, durable=True, outcome="error")
    await recorder.record_event(first, "response", {"status": 200}, durable=True, outcome="ok")
    (row,) = await _rows(store, sessions, sessions.c.id == first)
    assert (row.kubectl_session, row.username, row.subject, row.issuer) == (
        "k1",
        ALICE.username,
        ALICE.subject,
        ALICE.issuer,
    )
    assert row.groups == ["ci-agents", "acme"]
    assert row.claims == {"repository": "acme/app", "workflow": "deploy", "run_id": "42", "actor": "alice"}
    assert (row.connection, row.command, row.user_agent) == ("dev", "kubectl get", "kubectl/v1.32.4 (linux/amd64)")
    assert (row.outcome, row.requests) == ("ok", 1)  # the last answer decides: an apply that created is ok
    assert row.ended_at >= row.started_at
    groups = await _rows(store, session_groups, session_groups.c.session_id == first)
    assert sorted(g.name for g in groups) == ["acme", "ci-agents"]
    (req,) = await _rows(store, events, events.c.session_id == first, events.c.type == "request")
    assert (req.verb, req.resource, req.namespace) == ("list", "pods", "default")


async def test_many_new_kubectl_sessions_in_a_row(recorder: Recorder, store: Store, make_flow: FlowFactory) -> None:
    """Past PostgreSQL's switch of the session insert to a generic plan (after five executions)."""
    for i in range(12):
        sid = recorder.session_for(make_flow(session=f"k{i}"))
        await recorder.record_event(sid, "request", {}, durable=True)
    assert len(await _rows(store, sessions)) == 12


async def test_clients_without_kubectl_session_get_an_idle_window(store: Store, make_flow: FlowFactory) -> None:
    clock = Clock()
    recorder = Recorder(store, idle_seconds=300, clock=clock)
    first = recorder.session_for(make_flow(session=""))
    clock.now += 299
    assert recorder.session_for(make_flow(session="")) == first
    assert recorder.session_for(make_flow(session="", connection="prod")) != first
    clock.now += 301
    assert recorder.session_for(make_flow(session="")) != first


async def test_kubectl_session_values_fill_a_bounded_cache_and_a_forgotten_one_finds_its_row(
    store: Store, make_flow: FlowFactory
) -> None:
    recorder = Recorder(store, session_cache_max=100)
    try:
        first = recorder.session_for(make_flow(session="k-first"))
        await recorder.record_event(first, "request", {}, durable=True)
        for i in range(5000):
            recorder.session_for(make_flow(session=f"forged-{i}"))
            assert len(recorder._sessions) <= 100
        again = recorder.session_for(make_flow(session="k-first"))  # long evicted: proposes a new id ...
        await recorder.record_event(again, "request", {}, durable=True)
        rows = await _rows(store, sessions, sessions.c.kubectl_session == "k-first")
        assert [r.id for r in rows] == [first]  # ... and the store keeps the one session
        assert {e.session_id for e in await _rows(store, events, events.c.type == "request")} == {first}
        assert recorder.session_for(make_flow(session="k-first")) == first
    finally:
        await recorder.close()


async def test_unidentified_callers_choose_no_session(recorder: Recorder, make_flow: FlowFactory) -> None:
    ids = {recorder.session_for(make_flow(session=f"forged-{i}", identity=None)) for i in range(100)}
    assert len(ids) == 1 and len(recorder._sessions) == 1


async def test_replicas_share_one_chain_and_one_kubectl_session(store_url: str, make_flow: FlowFactory) -> None:
    stores = [await Store.open(store_url) for _ in range(2)]
    replicas = [Recorder(s) for s in stores]
    try:
        ids = [r.session_for(make_flow(session="shared")) for r in replicas]
        assert ids[0] != ids[1]  # each replica proposes its own id ...

        async def burst(r: Recorder, sid: str, n: int) -> list[int]:
            return list(
                await asyncio.gather(*(r.record_event(sid, "request", {"n": i}, durable=True) for i in range(n)))
            )

        seqs = await asyncio.gather(burst(replicas[0], ids[0], 50), burst(replicas[1], ids[1], 50))
        all_seqs = sorted(seqs[0] + seqs[1])
        assert len(set(all_seqs)) == 100
        rows = await _rows(stores[0], sessions)
        assert len(rows) == 1  # ... but the store keeps one session, and both replicas write into it
        assert {r.session_id for r in await _rows(stores[0], events)} == {rows[0].id}
        async with stores[0].read() as conn:
            report = await chain.verify(conn)
        assert report.ok, report.problem
        assert report.events == 101
    finally:
        for r, s in zip(replicas, stores, strict=True):
            await r.close()
            await s.close()


async def test_retention_removes_old_events_and_leaves_a_verifiable_chain(store: Store, make_flow: FlowFactory) -> None:
    clock = Clock()
    recorder = Recorder(store, retention_seconds=90 * 86400, clock=clock)
    old = recorder.session_for(make_flow(session="old"))
    for i in range(3):
        await recorder.record_event(old, "request", {"n": i}, durable=True, counts_request=True)
    clock.now += 30 * 86400
    straddling = recorder.session_for(make_flow(session="straddling"))
    await recorder.record_event(straddling, "request", {"n": "early"}, durable=True)
    clock.now += 70 * 86400  # old is 100 days old, straddling's first event 70
    await recorder.record_event(straddling, "request", {"n": "late"}, durable=True)
    fresh = recorder.session_for(make_flow(session="fresh"))
    await recorder.record_event(fresh, "request", {"n": 0}, durable=True)

    result = await recorder.apply_retention()
    assert result is not None
    assert (result.through_seq, result.events_removed, result.sessions_removed) == (4, 4, 1)
    assert [r.id for r in await _rows(store, sessions, sessions.c.id == old)] == []
    assert {r.id for r in await _rows(store, sessions)} == {straddling, fresh}
    (checkpoint,) = await _rows(store, chain_checkpoints)
    assert checkpoint.through_seq == 4
    async with store.read() as conn:
        report = await chain.verify(conn)
    assert report.ok, report.problem
    assert report.first_seq == 5
    assert await recorder.apply_retention() is None  # nothing older left

    clock.now += 31 * 86400  # now straddling's late event and the retention event are old too
    await recorder.record_event(fresh, "request", {"n": 1}, durable=True)
    second = await recorder.apply_retention()
    assert second is not None and second.through_seq > 4
    async with store.read() as conn:
        report = await chain.verify(conn)
    assert report.ok, report.problem
    await recorder.close()


async def test_a_forged_checkpoint_does_not_verify(store: Store, make_flow: FlowFactory) -> None:
    recorder = Recorder(store)
    sid = recorder.session_for(make_flow())
    for i in range(4):
        await recorder.record_event(sid, "request", {"n": i}, durable=True)
    async with store.write() as conn:  # an intruder deletes the start and covers it with a checkpoint
        last = (await conn.execute(sa.select(events.c.hash).where(events.c.seq == 3))).scalar_one()
        await conn.execute(sa.delete(events).where(events.c.seq <= 3))
        await conn.execute(
            sa.insert(chain_checkpoints).values(
                created_at=0, cutoff=0, through_seq=3, last_hash=last, events_removed=3, sessions_removed=0
            )
        )
    async with store.read() as conn:
        report = await chain.verify(conn)
    assert report.problem is not None and report.problem.kind == "checkpoint"
    await recorder.close()


async def test_a_failed_batch_fails_its_waiters_and_the_next_one_recovers(
    tmp_path: Path, make_flow: FlowFactory
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    recorder = Recorder(store)
    sid = recorder.session_for(make_flow())
    blocker = sqlite3.connect(str(tmp_path / "k.db"), isolation_level=None)
    blocker.execute("DROP TABLE session_groups")  # the batch that creates the session will fail
    with pytest.raises(StoreError, match="session_groups"):
        await recorder.record_event(sid, "request", {}, durable=True)
    assert not recorder.healthy
    blocker.execute("CREATE TABLE session_groups (session_id VARCHAR(32), name TEXT, PRIMARY KEY (session_id, name))")
    blocker.close()
    assert await recorder.record_event(sid, "request", {}, durable=True) == 2  # the session seal is retried too
    assert recorder.healthy
    await recorder.close()
    with pytest.raises(StoreError, match="shut down"):
        await recorder.record_event(sid, "request", {}, durable=True)
    await store.close()
