"""A session's timeline in words: decisions and grants read as sentences, requests as the CLI shows them."""

from __future__ import annotations

from typing import Any

from kubegate.web.ui.timeline import describe, entry


def _event(type: str, **data: Any) -> dict[str, Any]:
    return {"seq": 3, "session_id": "s", "time": "2025-01-31T12:00:02.500000Z", "type": type, "data": data}


def test_approval_events_read_as_sentences() -> None:
    rules = [{"rule": "namespace-deletion-needs-a-human", "groups": ["platform-oncall"], "users": []}]
    assert describe(_event("access_request", request="abc", action="created", mode="wait", rules=rules)) == (
        "asked for approval: access request abc (wait); reviewers rule namespace-deletion-needs-a-human: "
        "platform-oncall"
    )
    assert describe(_event("approval", request="abc", reviewer="sandbox:rita", comment="ok", complete=True)) == (
        "sandbox:rita approved access request abc: “ok”"
    )
    assert describe(_event("approval", request="abc", reviewer="r", comment="", complete=False)).endswith(
        "(more approvals needed)"
    )
    assert describe(_event("denial", request="abc", reviewer="r", reason="no")) == "r denied access request abc: “no”"
    assert describe(_event("grant_used", request="abc", grant="once", uses=1)) == (
        "used the approval of access request abc (once, use 1)"
    )
    assert describe(_event("request_expired", request="abc")) == "access request abc expired without a decision"


def test_requests_and_streams_keep_their_details() -> None:
    request = _event(
        "request",
        method="GET",
        path="/api/v1/namespaces/a/pods",
        query="",
        info={"verb": "list", "resource": "pods", "namespace": "a"},
        body="{}",
    )
    assert describe(request) == "GET /api/v1/namespaces/a/pods  (list pods in a)"
    stream = _event("stream", kind="exec", namespace="a", pod="app", command=["sh", "-c", "id"], tty=True)
    assert describe(stream) == "exec stream to a/app: sh -c id (tty)"
    shown = entry(request, start=1738324800.0)
    assert shown["offset"] == 2.5 and shown["body"] == "{}" and shown["kind"] == "request"
    assert entry(_event("approval", request="x", reviewer="r"), 1738324800.0)["kind"] == "decision"
    binary = entry(_event("response", status=200, body="AAEC", encoding="base64"), 1738324800.0)
    assert binary["body"] is None
