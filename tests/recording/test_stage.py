from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from kubegate.kube.status import Refused
from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.policy.decision import Decision, RuleMatch
from kubegate.recording.anonymous import AnonymousRefusals
from kubegate.recording.recorder import Recorder
from kubegate.recording.stage import RECORD, RecorderStage
from kubegate.store.engine import Store
from kubegate.store.tables import events, sessions
from tests.recording.conftest import FlowFactory


async def _events(store: Store, *types: str) -> list[tuple[str, dict]]:
    async with store.read() as conn:
        rows = (
            await conn.execute(
                sa.select(events.c.type, events.c.data).where(events.c.type.in_(types)).order_by(events.c.seq)
            )
        ).all()
    return [(r.type, orjson.loads(r.data)) for r in rows]


async def _session(store: Store) -> sa.Row:
    async with store.read() as conn:
        return (await conn.execute(sa.select(sessions))).one()


async def test_request_is_committed_before_on_request_returns(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    flow = make_flow("GET", "/api/v1/namespaces/default/pods", "limit=500", token="eyJhbGciOi.secret-token")
    flow.decision = Decision("allow", (RuleMatch("agents", "allow", ["group ci-agents"]),), "allowed")
    await RecorderStage(recorder).on_request(flow)
    ((kind, data),) = await _events(store, "request")  # visible at once, from another connection
    assert kind == "request"
    assert (data["method"], data["path"], data["query"]) == ("GET", "/api/v1/namespaces/default/pods", "limit=500")
    assert data["info"]["verb"] == "list" and data["info"]["namespace"] == "default"
    assert data["decision"]["action"] == "allow" and [m["rule"] for m in data["decision"]["matches"]] == ["agents"]
    async with store.read() as conn:
        everything = " ".join(r.data for r in (await conn.execute(sa.select(events.c.data))).all())
    assert "secret-token" not in everything and "Authorization" not in everything


async def test_secret_bodies_are_masked_before_they_are_stored(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    recorder.max_body_bytes = 4096
    stage = RecorderStage(recorder)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"password": base64.b64encode(b"hunter2").decode()},
        "stringData": {"token": "t0k3n"},
    }
    await stage.on_request(make_flow("POST", "/api/v1/namespaces/default/secrets", body=orjson.dumps(secret)))
    patch = [{"op": "replace", "path": "/data/password", "value": "aHVudGVyMw=="}]
    await stage.on_request(make_flow("PATCH", "/api/v1/namespaces/default/secrets/db", body=orjson.dumps(patch)))
    await stage.on_request(make_flow("PUT", "/api/v1/namespaces/default/secrets/db", body=b"k8s\x00protobuf"))
    await stage.on_request(
        make_flow("POST", "/api/v1/namespaces/default/configmaps", body=b'{"kind":"ConfigMap","data":{"a":"b"}}')
    )
    bodies = [d["body"] for _, d in await _events(store, "request")]
    created = orjson.loads(bodies[0])
    assert created["data"] == {"password": MARKER_B64} and created["stringData"] == {"token": MARKER}
    assert created["metadata"] == {"name": "db"}
    assert orjson.loads(bodies[1]) == [{"op": "replace", "path": "/data/password", "value": MARKER}]
    assert bodies[2] == MARKER
    assert orjson.loads(bodies[3])["data"] == {"a": "b"}
    assert not any("hunter" in b or "t0k3n" in b or "aHVudGVy" in b for b in bodies)


async def test_response_body_is_recorded_as_sent_up_to_the_limit(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    stage = RecorderStage(recorder)
    flow = make_flow()
    await stage.on_request(flow)
    flow.response_status = 200
    flow.response_headers["Content-Type"] = "application/json"
    await stage.on_response(flow)
    sent = [await stage.on_chunk(flow, b"x" * 50), await stage.on_chunk(flow, b"y" * 50)]
    assert sent == [b"x" * 50, b"y" * 50]  # recording never changes what the client gets
    await stage.on_end(flow)
    await recorder.flush()
    ((_, data),) = await _events(store, "response")
    assert data["status"] == 200 and data["headers"] == {"Content-Type": "application/json"}
    assert data["body"] == "x" * 50 + "y" * 14 and data["truncated"] is True and data["bytes"] == 100
    assert (await _session(store)).outcome == "ok"


async def test_watch_streams_are_recorded_chunk_by_chunk(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    stage = RecorderStage(recorder)
    flow = make_flow("GET", "/api/v1/namespaces/default/pods", "watch=true")
    await stage.on_request(flow)
    flow.response_status = 200
    await stage.on_response(flow)
    await recorder.flush()
    assert [t for t, _ in await _events(store, "response", "chunk")] == ["response"]
    for i in range(3):
        chunk = orjson.dumps({"type": "ADDED", "object": {"n": i, "pad": "z" * 100}}) + b"\n"
        await stage.on_chunk(flow, chunk)
        await recorder.flush()
        assert len(await _events(store, "chunk")) == i + 1  # written as it passes, not at the end
    await stage.on_end(flow)
    await recorder.flush()
    recorded = await _events(store, "response", "chunk", "end")
    assert [t for t, _ in recorded] == ["response", "chunk", "chunk", "chunk", "end"]
    assert recorded[0][1]["stream"] is True
    assert orjson.loads(recorded[2][1]["body"])["object"]["n"] == 1  # chunks are whole, not cut at the limit
    assert recorded[4][1]["chunks"] == 3


async def test_a_refusal_before_the_recorder_is_recorded_with_its_request(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    stage = RecorderStage(recorder)
    flow = make_flow("DELETE", "/api/v1/namespaces/prod")
    flow.refusal = Refused(403, "policy denies delete namespaces", reason="Forbidden")
    await stage.on_end(flow)  # on_request never ran: the policy stage refused first
    anonymous = make_flow(identity=None, session="")
    anonymous.refusal = Refused(401, "no token", reason="Unauthorized")
    await stage.on_end(anonymous)
    await recorder.flush()
    refused = await _events(store, "refused")
    assert [(d["method"], d["status"]["code"]) for _, d in refused] == [("DELETE", 403), ("GET", 401)]
    assert refused[0][1]["info"]["verb"] == "delete"
    async with store.read() as conn:
        rows = {r.username: r for r in (await conn.execute(sa.select(sessions))).all()}
    assert (rows[flow.identity.username].outcome, rows[flow.identity.username].requests) == ("denied", 1)  # type: ignore[union-attr]
    assert (rows[""].outcome, rows[""].subject) == ("refused", "")


async def test_a_refusal_after_recording_links_to_the_request(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    stage = RecorderStage(recorder)
    flow = make_flow()
    await stage.on_request(flow)
    flow.refusal = Refused(502, "the response cannot be masked", reason="BadGateway")
    await stage.on_end(flow)
    await recorder.flush()
    ((_, data),) = await _events(store, "refused")
    assert data["request_seq"] == 2 and "method" not in data
    assert (await _session(store)).requests == 1


# -- fail closed ----------------------------------------------------------------------------------------


def _assert_refused_503(exc: Refused, problem: str) -> None:
    assert exc.code == 503 and exc.reason == "ServiceUnavailable"
    assert exc.message.startswith("kubegate cannot record this request, so it was not forwarded: ")
    assert problem in exc.message
    assert exc.message.endswith("try again or contact the kubegate operator")


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(f"sqlite:///{tmp_path / 'state' / 'kubegate.db'}")
    yield store
    await store.close()


async def test_fail_closed_when_the_database_directory_is_removed(sqlite_store: Store, make_flow: FlowFactory) -> None:
    recorder = Recorder(sqlite_store)
    stage = RecorderStage(recorder)
    await stage.on_request(make_flow())
    shutil.rmtree(Path(str(sqlite_store.url.database)).parent)
    flow = make_flow()
    with pytest.raises(Refused) as caught:
        await stage.on_request(flow)
    _assert_refused_503(caught.value, "is gone")
    assert flow.kept(RECORD) is None, "nothing recorded, so nothing to add to"
    await recorder.close()


@contextlib.contextmanager
def _read_only(path: Path):  # type: ignore[no-untyped-def]
    """Make the file read-only for this process. Root writes through mode bits, so as root the
    immutable flag does it (root's kubegate would otherwise rightly keep writing)."""
    path.chmod(0o444)
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o644)


async def test_fail_closed_when_the_database_file_is_read_only(sqlite_store: Store, make_flow: FlowFactory) -> None:
    recorder = Recorder(sqlite_store)
    stage = RecorderStage(recorder)
    await stage.on_request(make_flow())
    with _read_only(Path(str(sqlite_store.url.database))):
        with pytest.raises(Refused) as caught:
            await stage.on_request(make_flow())
        _assert_refused_503(caught.value, "is read-only")
        with pytest.raises(Exception, match="read-only"):
            await sqlite_store.ping()
    await stage.on_request(make_flow())  # writable again: recording resumes
    await recorder.close()


class _TcpProxy:
    """A TCP forwarder to PostgreSQL that the test can cut, as if the server stopped."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()


@pytest.mark.postgres
async def test_fail_closed_when_postgresql_stops(pg_url: str, make_flow: FlowFactory) -> None:
    """The store URL ends up pointing at a closed port: new requests get 503, running streams stop."""
    url = make_url(pg_url)
    proxy = _TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    port = await proxy.start()
    store = await Store.open(url.set(port=port).render_as_string(hide_password=False))
    recorder = Recorder(store)
    stage = RecorderStage(recorder)
    try:
        watch = make_flow("GET", "/api/v1/pods", "watch=true")
        await stage.on_request(watch)
        watch.response_status = 200
        await stage.on_response(watch)
        await proxy.stop()
        with pytest.raises(Refused) as caught:
            await stage.on_request(make_flow())
        _assert_refused_503(caught.value, "")
        with pytest.raises(Refused, match="cannot record this stream any more"):
            await stage.on_chunk(watch, b'{"type":"ADDED"}\n')
    finally:
        await recorder.close()
        await store.close()


async def test_a_thousand_unauthenticated_requests_with_7kb_paths_add_little_to_the_store(
    recorder: Recorder, store: Store, make_flow: FlowFactory
) -> None:
    stage = RecorderStage(recorder)
    for i in range(1000):
        flow = make_flow(
            "GET",
            f"/api/v1/namespaces/{i}/" + "x" * 7000,
            "q=" + "y" * 2000,
            identity=None,
            session=f"forged-{i}",
            body=b"z" * 60_000,
        )
        flow.refusal = Refused(
            401,
            "kubegate refused the token: no bearer token in the request",
            reason="Unauthorized",
        )
        await stage.on_end(flow)
    await stage.close()
    await recorder.flush()
    async with store.read() as conn:
        rows = (await conn.execute(sa.select(events.c.type, events.c.data))).all()
        session_rows = (await conn.execute(sa.select(sessions))).all()
    assert [r.type for r in rows] == ["session", "refused", "refusals"]
    assert sum(len(r.data) for r in rows) < 6_000  # not 1,000 x 7 KB
    assert len(session_rows) == 1  # forged Kubectl-Session values make no sessions
    summary = orjson.loads(rows[2].data)
    assert summary["refusals"] == 999 and len(summary["samples"]) == 5 and summary["others"] == 994


async def test_a_window_of_unauthenticated_refusals_is_summed_up_by_the_next_request_after_it(
    store: Store, make_flow: FlowFactory
) -> None:
    now = [1_700_000_000.0]
    recorder = Recorder(store, clock=lambda: now[0])
    stage = RecorderStage(recorder, anonymous=AnonymousRefusals(window_seconds=60))
    try:
        for _ in range(3):
            anonymous = make_flow(identity=None, session="")
            anonymous.refusal = Refused(401, "no token", reason="Unauthorized")
            await stage.on_end(anonymous)
        now[0] += 61
        await stage.on_end(make_flow())  # someone else's request, long after
        await recorder.flush()
        [(_, summary)] = await _events(store, "refusals")
        assert (summary["refusals"], summary["samples"]) == (
            2,
            [{"what": "GET /api/v1/namespaces/default/pods: no token", "count": 2}],
        )
    finally:
        await recorder.close()
