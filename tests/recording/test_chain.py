from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from kubegate.recording import chain
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store
from tests.recording.conftest import ALICE, FlowFactory


async def _populate(recorder: Recorder, make_flow: FlowFactory, requests: int = 4) -> None:
    """Two sessions, interleaved: seq 1 seals a, 2-3 request/response of a, 4 seals b, 5-6 of b, ..."""
    a = recorder.session_for(make_flow(session="a"))
    b = recorder.session_for(make_flow(session="b"))
    for i in range(requests):
        sid = a if i % 2 == 0 else b
        await recorder.record_event(sid, "request", {"method": "GET", "path": f"/api/v1/pods/{i}"}, durable=True)
        await recorder.record_event(sid, "response", {"status": 200}, durable=True, outcome="ok")


async def _verify(store: Store) -> chain.ChainReport:
    async with store.read() as conn:
        return await chain.verify(conn)


def _sqlite(store: Store) -> sqlite3.Connection:
    return sqlite3.connect(str(store.url.database), isolation_level=None)


async def test_untouched_chain_verifies(recorder: Recorder, store: Store, make_flow: FlowFactory) -> None:
    await _populate(recorder, make_flow)
    report = await _verify(store)
    assert report.ok, report.problem
    assert (report.events, report.first_seq, report.last_seq) == (10, 1, 10)
    async with store.read() as conn:
        head = (await conn.execute(sa.select(chain.chain_head))).one()
    assert report.head_hash == head.hash


def test_hash_covers_every_field_and_the_link() -> None:
    ev = chain.NewEvent("s", 1.5, "request", '{"a":1}', "get", "pods", "default")
    base = chain.event_hash(ev, chain.GENESIS_HASH)
    changed = [
        chain.NewEvent("t", 1.5, "request", '{"a":1}', "get", "pods", "default"),
        chain.NewEvent("s", 1.6, "request", '{"a":1}', "get", "pods", "default"),
        chain.NewEvent("s", 1.5, "response", '{"a":1}', "get", "pods", "default"),
        chain.NewEvent("s", 1.5, "request", '{"a":2}', "get", "pods", "default"),
        chain.NewEvent("s", 1.5, "request", '{"a":1}', "list", "pods", "default"),
        chain.NewEvent("s", 1.5, "request", '{"a":1}', "get", "secrets", "default"),
        chain.NewEvent("s", 1.5, "request", '{"a":1}', "get", "pods", "kube-system"),
    ]
    assert len({base, *(chain.event_hash(c, chain.GENESIS_HASH) for c in changed)}) == 8
    assert chain.event_hash(ev, "1" * 64) != base


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
class TestTamperingInTheSqliteFile:
    """Edits made behind kubegate's back, with the sqlite3 module, as an intruder would."""

    async def test_edited_row_is_named(self, recorder: Recorder, store: Store, make_flow: FlowFactory) -> None:
        await _populate(recorder, make_flow)
        with _sqlite(store) as db:
            db.execute("UPDATE events SET data = replace(data, '/api/v1/pods/2', '/api/v1/pods/9') WHERE seq = 7")
        report = await _verify(store)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.seq) == ("edited", 7)
        assert "event 7 was edited" in report.problem.message

    async def test_edit_with_a_rewritten_hash_is_named(
        self, recorder: Recorder, store: Store, make_flow: FlowFactory
    ) -> None:
        await _populate(recorder, make_flow)
        with _sqlite(store) as db:
            row = db.execute(
                "SELECT session_id, ts, type, verb, resource, namespace, data, prev_hash FROM events WHERE seq = 3"
            ).fetchone()
            forged = chain.NewEvent(row[0], row[1], row[2], row[6].replace("200", "201"), row[3], row[4], row[5])
            db.execute(
                "UPDATE events SET data = ?, hash = ? WHERE seq = 3", (forged.data, chain.event_hash(forged, row[7]))
            )
        report = await _verify(store)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.seq) == ("edited", 3)

    async def test_removed_row_is_named(self, recorder: Recorder, store: Store, make_flow: FlowFactory) -> None:
        await _populate(recorder, make_flow)
        with _sqlite(store) as db:
            db.execute("DELETE FROM events WHERE seq IN (5, 6)")
        report = await _verify(store)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.seq) == ("removed", 5)
        assert "events 5..6 removed" in report.problem.message

    async def test_removed_tail_is_named(self, recorder: Recorder, store: Store, make_flow: FlowFactory) -> None:
        await _populate(recorder, make_flow)
        with _sqlite(store) as db:
            db.execute("DELETE FROM events WHERE seq >= 9")
        report = await _verify(store)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.seq) == ("removed", 9)

    async def test_reordered_rows_are_named(self, recorder: Recorder, store: Store, make_flow: FlowFactory) -> None:
        await _populate(recorder, make_flow)
        with _sqlite(store) as db:
            db.execute("UPDATE events SET seq = -1 WHERE seq = 5")
            db.execute("UPDATE events SET seq = 5 WHERE seq = 6")
            db.execute("UPDATE events SET seq = 6 WHERE seq = -1")
        report = await _verify(store)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.seq) == ("reordered", 5)
        assert "recorded right after the event now at seq 6" in report.problem.message

    async def test_edited_session_identity_is_named(
        self, recorder: Recorder, store: Store, make_flow: FlowFactory
    ) -> None:
        await _populate(recorder, make_flow)
        with _sqlite(store) as db:
            sid = db.execute("SELECT id FROM sessions WHERE kubectl_session = 'b'").fetchone()[0]
            db.execute("UPDATE sessions SET username = 'somebody-else' WHERE id = ?", (sid,))
        report = await _verify(store)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.session_id) == ("session", sid)

    @pytest.mark.parametrize("via", ["", "mcp"])
    async def test_a_session_marked_or_unmarked_behind_kubegates_back_is_named(
        self, recorder: Recorder, store: Store, make_flow: FlowFactory, via: str
    ) -> None:
        """`via` is sealed once set: an MCP session passed off as kubectl's, or the other way, shows."""
        sid = recorder.session(
            ALICE, "dev", "m", command="mcp get", user_agent="kubegate-mcp/1", source="10.0.0.9", via=via
        )
        await recorder.record_event(sid, "tool_call", {"tool": "get"}, durable=True)
        assert (await _verify(store)).ok
        with _sqlite(store) as db:
            db.execute("UPDATE sessions SET via = ? WHERE id = ?", ("" if via else "mcp", sid))
        report = await _verify(store)
        assert report.problem is not None
        assert (report.problem.kind, report.problem.session_id) == ("session", sid)


def test_a_session_without_via_keeps_the_seal_it_had_before_via_existed() -> None:
    row = {name: "x" for name in chain.SESSION_FIELDS}
    assert chain.session_seal({**row, "via": ""}) == chain.canonical(row)
    assert chain.session_seal({**row, "via": "mcp"}) == chain.canonical({**row, "via": "mcp"})


async def test_edit_is_detected_on_every_backend(recorder: Recorder, store: Store, make_flow: FlowFactory) -> None:
    await _populate(recorder, make_flow)
    async with store.write() as conn:
        await conn.execute(sa.update(chain.events).where(chain.events.c.seq == 3).values(type="chunk"))
    report = await _verify(store)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == ("edited", 3)
