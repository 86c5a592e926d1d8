"""The sessions pages over a store filled by the recorder: filters and paging as `kubegate sessions
list` has them, a session's timeline, and the asciicast and JSONL downloads."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest
from mcp_types import CallToolResult, TextContent

from kubegate.config import MaskingConfig
from kubegate.identity.model import Identity
from kubegate.masking.masker import Masker
from kubegate.mcp.loopback import Caller
from kubegate.mcp.recording import ToolCalls
from kubegate.recording.recorder import Recorder
from kubegate.recording.stage import RecorderStage, SessionStage
from kubegate.web.ui.sessions import session_filter
from tests.approvals.builders import AGENT, DAVE, make_flow
from tests.web.ui.conftest import AUDITOR, UIHarness


@pytest.fixture
async def recorder(ui: UIHarness) -> AsyncIterator[Recorder]:
    rec = Recorder(ui.store)
    await rec.start()
    yield rec
    await rec.close()


async def record(
    recorder: Recorder,
    session: str,
    identity: Identity = AGENT,
    path: str = "/api/v1/namespaces/a/pods",
    status: int = 200,
) -> str:
    stage = RecorderStage(recorder)
    flow = make_flow("GET", path, identity=identity, session=session)
    await SessionStage(recorder).on_request(flow)
    await stage.on_request(flow)
    flow.response_status = status
    await stage.on_response(flow)
    await stage.on_chunk(flow, b'{"items": []}')
    await stage.on_end(flow)
    await recorder.flush()
    return flow.session_id


def _session_links(html: str) -> list[str]:
    return re.findall(r'<a href="/ui/sessions/([^"?/]+)">', html)


def test_the_filter_takes_the_fields_of_the_cli() -> None:
    flt, kept = session_filter({"user": " idp#dave ", "verb": "", "since": "2h", "outcome": "denied", "x": "1"})
    assert (flt.user, flt.outcome, flt.verb) == ("idp#dave", "denied", None) and flt.since is not None
    assert kept == {"user": "idp#dave", "since": "2h", "outcome": "denied"}


async def test_filters_and_pages(ui: UIHarness, recorder: Recorder) -> None:
    agent_ids = [await record(recorder, f"k-{i}") for i in range(27)]
    dave_id = await record(recorder, "k-dave", identity=DAVE, path="/api/v1/namespaces/b/secrets")
    headers = ui.sign_in(AUDITOR)
    _, html = await ui.page("/ui/sessions", headers, params={"user": DAVE.username})
    assert _session_links(html) == [dave_id]
    assert "<td><code>list secrets -n b</code></td>" in html  # what the session asked for
    _, html = await ui.page("/ui/sessions", headers, params={"resource": "secrets", "namespace": "b"})
    assert _session_links(html) == [dave_id]
    _, first = await ui.page("/ui/sessions", headers, params={"user": AGENT.username, "limit": "25"})
    assert len(_session_links(first)) == 25 and "First page" not in first
    next_url = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', first)
    assert next_url, first
    _, second = await ui.page(next_url.group(1).replace("&amp;", "&"), headers)
    assert len(_session_links(second)) == 2 and "First page" in second and "Next page" not in second
    assert set(_session_links(first) + _session_links(second)) == set(agent_ids)


async def test_a_bad_time_is_explained(ui: UIHarness) -> None:
    status, html = await ui.page("/ui/sessions", ui.sign_in(AUDITOR), params={"since": "yesterday-ish"})
    assert status == 200 and "is not a time: use RFC 3339" in html


async def test_a_session_page_shows_its_timeline_and_downloads(ui: UIHarness, recorder: Recorder) -> None:
    sid = await record(recorder, "k-1", path="/api/v1/namespaces/a/configmaps")
    headers = ui.sign_in(AUDITOR)
    status, html = await ui.page(f"/ui/sessions/{sid}", headers)
    assert status == 200
    assert "GET /api/v1/namespaces/a/configmaps" in html and "200 in" in html
    assert "Terminal replay" not in html and f"/ui/sessions/{sid}/export.jsonl" in html
    export = await ui.client.get(f"/ui/sessions/{sid}/export.jsonl", headers=headers)
    assert export.headers["Content-Disposition"] == f'attachment; filename="kubegate-session-{sid}.jsonl"'
    lines = [json.loads(line) for line in (await export.text()).splitlines()]
    assert lines[0]["kind"] == "session" and lines[0]["id"] == sid
    assert {line["type"] for line in lines[1:]} >= {"request", "response"}
    status, html = await ui.page(f"/ui/sessions/{sid}/cast", headers)
    assert status == 404 and "no exec or attach stream" in html
    status, html = await ui.page("/ui/sessions/nope", headers)
    assert status == 404 and "does not exist" in html


async def test_an_exec_session_has_a_player_and_an_asciicast(ui: UIHarness, recorder: Recorder) -> None:
    sid = await record(recorder, "k-exec", path="/api/v1/namespaces/a/pods/app/exec")
    await recorder.record_event(
        sid,
        "stream",
        {"flow": "f1", "kind": "exec", "namespace": "a", "pod": "app", "command": ["sh"], "tty": True},
        durable=True,
    )
    await recorder.record_event(
        sid, "cast", {"flow": "f1", "events": [[0.1, "r", "100x30"], [0.5, "o", "hi\r\n"]]}, durable=True
    )
    await recorder.flush()
    headers = ui.sign_in(AUDITOR)
    _, html = await ui.page(f"/ui/sessions/{sid}", headers)
    assert f'data-cast-src="/ui/sessions/{sid}/cast"' in html
    assert "/ui/static/vendor/asciinema-player.min.js" in html and "exec stream to a/app: sh (tty)" in html
    cast = await ui.client.get(f"/ui/sessions/{sid}/cast", headers=headers, params={"download": "1"})
    assert cast.headers["Content-Disposition"] == f'attachment; filename="kubegate-session-{sid}.cast"'
    header, *events = (await cast.text()).splitlines()
    assert json.loads(header)["width"] == 100 and json.loads(events[-1])[1:] == ["o", "hi\r\n"]


async def test_an_mcp_session_is_marked_and_its_page_shows_each_tool_call_with_its_requests(
    ui: UIHarness, recorder: Recorder
) -> None:
    calls = ToolCalls(recorder, Masker(MaskingConfig()))
    caller = Caller(token="t", session_id="s1", client="claude-code", command="mcp get resource=pods")
    kubectl_id = await record(recorder, "k-plain")

    async def one_call(tool: str, arguments: dict[str, object], path: str, answer: str) -> None:
        async def run() -> CallToolResult:
            await record(recorder, caller.kubectl_session, path=path)  # the loopback request, as the pipeline has it
            return CallToolResult(content=[TextContent(type="text", text=answer)])

        await calls.around(AGENT, caller, "dev", "10.0.0.9", tool, arguments, run)

    await one_call("get", {"resource": "pods", "namespace": "a"}, "/api/v1/namespaces/a/pods", "0 items")
    await one_call("get", {"resource": "configmaps", "namespace": "b"}, "/api/v1/namespaces/b/configmaps", "1 item")
    await recorder.flush()
    headers = ui.sign_in(AUDITOR)
    _, listing = await ui.page("/ui/sessions", headers)
    rows = {sid: row for sid, row in re.findall(r'<a href="/ui/sessions/([^"?/]+)">(.*?)</tr>', listing, re.S)}
    [mcp_id] = [sid for sid in rows if sid != kubectl_id]
    assert '<span class="badge via">mcp</span>' in rows[mcp_id] and "badge via" not in rows[kubectl_id]
    _, only = await ui.page("/ui/sessions", headers, params={"via": "mcp"})
    assert _session_links(only) == [mcp_id]
    _, page = await ui.page(f"/ui/sessions/{mcp_id}", headers)
    section = page.split('id="tools-heading"', 1)[1].split('id="timeline-heading"', 1)[0]
    first, second = section.split('class="tool-call"')[1:]
    assert "<dt>resource</dt><dd><code>pods</code></dd>" in first and "0 items</pre>" in first
    assert "GET /api/v1/namespaces/a/pods" in first and "configmaps" not in first  # only the requests it made
    assert "GET /api/v1/namespaces/b/configmaps" in second and "&rarr; <code>200</code>" in second
    assert '<span class="badge ok">result</span>' in second
    _, plain = await ui.page(f"/ui/sessions/{kubectl_id}", headers)
    assert "Tool calls" not in plain and "the Kubernetes API" in plain
