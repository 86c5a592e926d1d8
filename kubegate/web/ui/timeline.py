"""One line per recorded event for a session's timeline page: requests and responses as the CLI
shows them (recording.replay.summarize), and decisions, approvals and grants in words a reader
follows without knowing the event schema."""

from __future__ import annotations

from typing import Any

from kubegate.recording.replay import parse_time, summarize, tool_arguments, tool_outcome

BODY_TYPES = frozenset({"request", "response", "chunk", "refused"})
TOOL_TYPES = frozenset({"tool_call", "tool_result"})
BODY_LABELS = {"tool_call": "Arguments", "tool_result": "Result the client received"}
DECISION_TYPES = frozenset(
    {
        "access_request",
        "approval",
        "denial",
        "grant_used",
        "grant_released",
        "grant_revoked",
        "request_expired",
        "refused",
        "binding",
    }
)


def _reviewers(rules: list[dict[str, Any]]) -> str:
    return "; ".join(f"rule {r.get('rule')}: {', '.join([*r.get('groups', []), *r.get('users', [])])}" for r in rules)


def describe(event: dict[str, Any]) -> str:
    kind, d = event["type"], event.get("data") or {}
    request = d.get("request", "?")
    if kind == "access_request":
        verb = "asked for approval" if d.get("action") == "created" else "joined the pending request"
        return f"{verb}: access request {request} ({d.get('mode')}); reviewers {_reviewers(d.get('rules') or [])}"
    if kind == "approval":
        comment = f": “{d['comment']}”" if d.get("comment") else ""
        done = "" if d.get("complete") else " (more approvals needed)"
        return f"{d.get('reviewer')} approved access request {request}{comment}{done}"
    if kind == "denial":
        return f"{d.get('reviewer')} denied access request {request}: “{d.get('reason', '')}”"
    if kind == "grant_used":
        return f"used the approval of access request {request} ({d.get('grant')}, use {d.get('uses')})"
    if kind == "grant_released":
        return f"gave back the approval of access request {request}: {d.get('why', '')}"
    if kind == "grant_revoked":
        return f"{d.get('by')} revoked access request {request}: “{d.get('reason', '')}”"
    if kind == "request_expired":
        return f"access request {request} expired without a decision"
    if kind == "binding":
        where = f" in {d['namespace']}" if d.get("namespace") else ""
        return (
            f"{d.get('action')} temporary {d.get('kind')} {d.get('name')}{where}: {d.get('role_kind')} "
            f"{d.get('role')} for {d.get('user')} until {d.get('expires_at')}"
        )
    if kind == "cast":
        return f"terminal: {len(d.get('events') or [])} recorded output/input events"
    if kind == "stream":
        command = " ".join(d.get("command") or [])
        return (
            f"{d.get('kind')} stream to {d.get('namespace', '')}/{d.get('pod', '')}"
            + (f": {command}" if command else "")
            + (" (tty)" if d.get("tty") else "")
        )
    return summarize(event)


def _body(event: dict[str, Any]) -> str | None:
    data = event.get("data") or {}
    if event["type"] == "tool_call":
        return tool_arguments(data)
    if event["type"] == "tool_result":
        return str(data.get("body", ""))
    return data.get("body") if event["type"] in BODY_TYPES and data.get("encoding") != "base64" else None


def _kind(kind: str) -> str:
    return "decision" if kind in DECISION_TYPES else "tool" if kind in TOOL_TYPES else kind


def entry(event: dict[str, Any], start: float) -> dict[str, Any]:
    data = event.get("data") or {}
    body = _body(event)
    return {
        "seq": event["seq"],
        "type": event["type"],
        "kind": _kind(event["type"]),
        "time": event["time"],
        "offset": parse_time(event["time"]) - start,
        "text": describe(event),
        "body": body,
        "label": BODY_LABELS.get(event["type"], "Body"),
        "truncated": bool(data.get("truncated")),
    }


def _answer(event: dict[str, Any]) -> str:
    data = event.get("data") or {}
    if event["type"] == "refused":
        status = data.get("status") or {}
        return f"refused {status.get('code', '?')}: {status.get('message', '')}"
    return str(data.get("status", "?"))


def tool_calls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each MCP tool call among `events` (chain order): its arguments, its result, and the Kubernetes
    requests recorded while it ran (calls that overlap in time share those made meanwhile)."""
    calls: list[dict[str, Any]] = []
    running: dict[int, dict[str, Any]] = {}
    requests: dict[int, dict[str, Any]] = {}
    for event in events:
        kind, data = event["type"], event.get("data") or {}
        if kind == "tool_call":
            call = {
                "seq": event["seq"],
                "time": event["time"],
                "tool": data.get("tool", ""),
                "arguments": [
                    (k, v if isinstance(v, str) else tool_arguments({"arguments": v}))
                    for k, v in sorted((data.get("arguments") or {}).items())
                ],
                "requests": [],
                "outcome": "no result recorded",
                "badge": "",
                "result": None,
                "chars": 0,
                "truncated": False,
            }
            calls.append(call)
            running[event["seq"]] = call
        elif kind == "tool_result" and data.get("call_seq") in running:
            call = running.pop(data["call_seq"])
            call["outcome"] = tool_outcome(data)
            call["badge"] = "pending" if data.get("pending") else "error" if data.get("error") else "ok"
            call["result"] = str(data.get("body", ""))
            call["chars"] = data.get("chars", 0)
            call["truncated"] = bool(data.get("truncated"))
        elif kind == "request" or (kind == "refused" and "method" in data):
            made = {"line": summarize(event), "answer": _answer(event) if kind == "refused" else ""}
            requests[event["seq"]] = made
            for call in running.values():
                call["requests"].append(made)
        elif kind in ("response", "refused") and data.get("request_seq") in requests:
            requests[data["request_seq"]]["answer"] = _answer(event)
    return calls
