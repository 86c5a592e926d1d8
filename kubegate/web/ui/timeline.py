"""One line per recorded event for a session's timeline page: requests and responses as the CLI
shows them (recording.replay.summarize), and decisions, approvals and grants in words a reader
follows without knowing the event schema."""

from __future__ import annotations

from typing import Any

from kubegate.recording.replay import parse_time, summarize

BODY_TYPES = frozenset({"request", "response", "chunk", "refused"})
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


def entry(event: dict[str, Any], start: float) -> dict[str, Any]:
    data = event.get("data") or {}
    body = data.get("body") if event["type"] in BODY_TYPES and data.get("encoding") != "base64" else None
    return {
        "seq": event["seq"],
        "type": event["type"],
        "kind": "decision" if event["type"] in DECISION_TYPES else event["type"],
        "time": event["time"],
        "offset": parse_time(event["time"]) - start,
        "text": describe(event),
        "body": body,
        "truncated": bool(data.get("truncated")),
    }
