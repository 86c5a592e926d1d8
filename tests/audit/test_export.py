"""Export: every committed event reaches each sink at least once, from a cursor that moves only after the
sink has the batch; a sink that is down delays nobody, shows as lag, and gets everything once it is back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from kubegate.audit.config import SinkConfig
from kubegate.audit.export import Exporter, ExportMetrics
from kubegate.audit.sinks import FileSink, S3Sink, SinkError, WebhookSink
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store
from kubegate.store.tables import events
from tests.audit.builders import DEV, receiver, record_requests
from tests.audit.schema import assert_audit_event


async def exported_seqs(store: Store) -> list[int]:
    """The seqs of every event an audit Event is made from (request and response events)."""
    async with store.read() as conn:
        return list(
            (
                await conn.execute(
                    sa.select(events.c.seq).where(events.c.type.in_(["request", "response"])).order_by(events.c.seq)
                )
            ).scalars()
        )


def seqs_of(lines: list[dict[str, Any]]) -> list[int]:
    return [int(e["annotations"]["kubegate.dev/seq"]) for e in lines]


async def drain(exporter: Exporter) -> None:
    while await exporter.step():
        pass


async def test_a_file_sink_gets_every_event_once_and_a_restart_resumes_at_the_cursor(
    store: Store, tmp_path: Path
) -> None:
    config = SinkConfig(name="siem", type="file", path=tmp_path / "audit.jsonl", batch_max=3)
    await record_requests(store, 4)
    first = Exporter(store, FileSink(config), batch_max=3)
    await drain(first)
    await first.release()  # a clean shutdown
    await record_requests(store, 2)
    restarted = Exporter(store, FileSink(config), batch_max=3)  # a new process: only the cursor is shared
    await drain(restarted)
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert seqs_of(lines) == await exported_seqs(store)
    for event in lines:
        assert_audit_event(event)
    assert [e["stage"] for e in lines[:2]] == ["RequestReceived", "ResponseComplete"]
    assert restarted.status() == {"state": "ok", "lag": 0}


async def test_an_mcp_tool_call_is_exported_and_its_result_keeps_its_call_across_a_restart(
    store: Store, tmp_path: Path
) -> None:
    config = SinkConfig(name="siem", type="file", path=tmp_path / "audit.jsonl")
    recorder = Recorder(store)
    sid = recorder.session(DEV, "dev", "mcp-s1", command="mcp get", user_agent="kubegate-mcp/1", source="", via="mcp")
    seq = await recorder.record_event(sid, "tool_call", {"call": "c" * 32, "tool": "get"}, durable=True)
    await drain(first := Exporter(store, FileSink(config)))
    await first.release()
    await recorder.record_event(
        sid, "tool_result", {"call": "c" * 32, "call_seq": seq, "tool": "get", "body": "0 items"}, durable=True
    )
    await recorder.close()
    await drain(Exporter(store, FileSink(config)))  # a new process: the call was exported by the first one
    called, answered = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    for event in (called, answered):
        assert_audit_event(event)
    assert (called["stage"], answered["stage"]) == ("RequestReceived", "ResponseComplete")
    assert answered["auditID"] == called["auditID"] and answered["requestURI"] == "/mcp"
    assert answered["requestReceivedTimestamp"] == called["stageTimestamp"]  # its call, recalled from the store
    assert answered["annotations"]["kubegate.dev/mcp-tool"] == "get" and "0 items" not in str(answered)


async def test_a_sink_that_is_down_delays_nobody_shows_lag_then_gets_everything(store: Store) -> None:
    registry = CollectorRegistry()
    await record_requests(store, 3)
    async with receiver() as hook:
        hook.failures = 3
        sink = WebhookSink(SinkConfig(name="hook", type="webhook", url=hook.url))
        exporter = Exporter(store, sink, interval=0.01, retry_max_interval=0.05, metrics=ExportMetrics(registry))
        with pytest.raises(SinkError, match="the webhook answered HTTP 503"):
            await exporter.step()
        assert exporter.lag == 7 and registry.get_sample_value("kubegate_export_lag_events", {"sink": "hook"}) == 7
        await record_requests(store, 1)  # recording goes on while the sink is down
        task = asyncio.create_task(exporter.run())
        try:
            async with asyncio.timeout(10):
                while exporter.lag or not hook.received:  # noqa: ASYNC110 - the lag is a number, not an event
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
        await sink.close()
    assert registry.get_sample_value("kubegate_export_failures_total", {"sink": "hook"}) == 2
    lists = [orjson.loads(body) for body in hook.received]
    assert {(b["kind"], b["apiVersion"]) for b in lists} == {("EventList", "audit.k8s.io/v1")}
    assert seqs_of([e for b in lists for e in b["items"]]) == await exported_seqs(store)
    assert exporter.status() == {"state": "ok", "lag": 0}


async def test_s3_batches_are_objects_named_by_their_seqs(store: Store, s3: Any, s3_endpoint: str) -> None:
    s3.create_bucket(Bucket="audit-batches")
    config = SinkConfig(
        name="lake", type="s3", bucket="audit-batches", region="us-east-1", endpoint_url=s3_endpoint, batch_max=4
    )
    await record_requests(store, 3)
    await drain(Exporter(store, S3Sink(config), batch_max=4))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="audit-batches")["Contents"]]
    assert keys == ["kubegate/audit/000000000001-000000000004.jsonl", "kubegate/audit/000000000005-000000000007.jsonl"]
    lines = [
        orjson.loads(line)
        for key in keys
        for line in s3.get_object(Bucket="audit-batches", Key=key)["Body"].read().splitlines()
    ]
    assert seqs_of(lines) == await exported_seqs(store)
    assert lines[-1]["stage"] == "ResponseComplete" and lines[-1]["verb"] == "get"  # its request was a batch before


async def test_events_retention_removed_before_export_are_counted_never_silent(store: Store, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    now = [1_000.0]
    recorder = Recorder(store, retention_seconds=60, clock=lambda: now[0])
    exporter = Exporter(
        store,
        FileSink(SinkConfig(name="late", type="file", path=tmp_path / "a.jsonl")),
        metrics=ExportMetrics(registry),
    )
    await record_requests(store, 1, recorder=recorder)
    await recorder.flush()
    assert await exporter.step() == 3  # the sink exists and has taken what there was
    await record_requests(store, 2, recorder=recorder)  # then is down while retention runs
    await recorder.apply_retention(now=2_000.0)
    await recorder.close()
    await drain(exporter)
    assert exporter.status()["lost_to_retention"] == 4
    assert registry.get_sample_value("kubegate_export_lost_events_total", {"sink": "late"}) == 4
    newcomer = Exporter(store, FileSink(SinkConfig(name="new", type="file", path=tmp_path / "b.jsonl")))
    await drain(newcomer)  # a sink added after the cut starts at the oldest event kept: nothing lost
    assert "lost_to_retention" not in newcomer.status()


async def test_of_two_replicas_one_exports_a_sink_and_the_other_takes_over_when_its_lease_runs_out(
    store: Store, tmp_path: Path
) -> None:
    now = [1_000.0]
    config = SinkConfig(name="siem", type="file", path=tmp_path / "audit.jsonl")
    first, second = (Exporter(store, FileSink(config), lease_seconds=30, clock=lambda: now[0]) for _ in range(2))
    await record_requests(store, 2)
    await drain(first)
    await record_requests(store, 1)
    assert await second.step() == 0
    assert second.status() == {"state": "standby", "lag": 2}
    now[0] += 31  # the first replica stopped renewing
    await drain(second)
    assert first.standby is False and second.status() == {"state": "ok", "lag": 0}
    assert await first.step() == 0 and first.standby  # the second one holds it now
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert seqs_of(lines) == await exported_seqs(store)  # each event once: no replica fed the sink twice


async def test_kill_9_during_export_loses_no_event(tmp_path: Path) -> None:
    """The sink has a batch but the exporter dies before its cursor moves: the restart sends it again."""
    db = tmp_path / "kubegate.db"
    store = await Store.open(f"sqlite:///{db}")
    await record_requests(store, 12)
    received: list[dict[str, Any]] = []
    third = asyncio.Event()
    stalled: list[bool] = []

    async def hook(request: web.Request) -> web.Response:
        received.extend(orjson.loads(await request.read())["items"])
        if len(received) >= 15 and not stalled:
            stalled.append(True)
            third.set()
            await asyncio.sleep(30)  # answer never comes: the exporter is killed while it waits
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    config = tmp_path / "kubegate.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{db}'}}\naudit:\n  export:\n    interval: 10ms\n    lease: 500ms\n"
        f"    sinks:\n    - {{name: siem, type: webhook, url: '{server.make_url('/hook')}',"
        " batch_max: 5}\n"
    )
    argv = [sys.executable, "-m", "kubegate", "audit", "export", "--config", str(config)]
    proc = await asyncio.create_subprocess_exec(*argv)
    try:
        await asyncio.wait_for(third.wait(), 30)
        os.kill(proc.pid, signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        received_before = len(received)
        again = await asyncio.create_subprocess_exec(*argv, "--once")
        assert await asyncio.wait_for(again.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        await server.close()
    expected = await exported_seqs(store)
    await store.close()
    got = seqs_of(received)
    assert set(got) == set(expected) and received_before < len(received)
    assert len(got) > len(expected)  # the batch in flight at the kill came twice: at least once, never none
