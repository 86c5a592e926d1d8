"""Turn a session's events back into what happened: a one-line timeline, or a replay of the kubectl
command and the answers it got, in order and with the original pauses."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

SUMMARY_CHARS = 160  # of a tool call's arguments or result in a one-line summary


@dataclass(frozen=True, slots=True)
class Step:
    delay: float  # seconds since the previous step, as recorded
    text: str


def parse_time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _body(data: dict[str, Any]) -> str:
    body = data.get("body")
    if body is None:
        return ""
    text = f"({len(base64.b64decode(body))} bytes of binary data)" if data.get("encoding") == "base64" else body
    if data.get("truncated"):
        text += f"\n[recorded {data.get('bytes', 0)} bytes in all; the rest was not stored]"
    return text


def _request_line(data: dict[str, Any]) -> str:
    query = f"?{data['query']}" if data.get("query") else ""
    return f"{data.get('method', '?')} {data.get('path', '?')}{query}"


def _status(status: dict[str, Any]) -> str:
    return f"{status.get('code', '?')} {status.get('reason', '')}: {status.get('message', '')}"


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SUMMARY_CHARS else flat[:SUMMARY_CHARS] + "..."


def tool_arguments(data: dict[str, Any]) -> str:
    """A tool call's arguments as they were recorded (masked), in one JSON line."""
    return orjson.dumps(data.get("arguments") or {}, option=orjson.OPT_SORT_KEYS).decode()


def tool_outcome(data: dict[str, Any]) -> str:
    """How a tool call ended, for the client: its result, an error, or a wait for an access request."""
    if data.get("pending"):
        return f"pending approval of access request {data['pending']}"
    return "error" if data.get("error") else "result"


def _tool_text(data: dict[str, Any]) -> str:
    text = str(data.get("body", ""))
    if data.get("truncated"):
        text += f"\n[the result had {data.get('chars', 0)} characters; the rest was not stored]"
    return text


def summarize(event: dict[str, Any]) -> str:
    """One line for a timeline: what the event says, without bodies."""
    kind, data = event["type"], event.get("data") or {}
    if kind == "request":
        info = data.get("info") or {}
        resource = "/".join(p for p in (info.get("resource"), info.get("subresource")) if p)
        what = " ".join(p for p in (info.get("verb"), resource, info.get("name")) if p)
        where = f" in {info['namespace']}" if info.get("namespace") else ""
        return f"{_request_line(data)}" + (f"  ({what}{where})" if what else "")
    if kind == "response":
        if data.get("stream"):
            return f"{data.get('status')} stream started"
        return f"{data.get('status')} in {data.get('duration_ms')} ms, {data.get('bytes', 0)} bytes" + (
            f", error: {data['error']}" if data.get("error") else ""
        )
    if kind == "chunk":
        return f"#{data.get('n')} {data.get('bytes', 0)} bytes"
    if kind == "end":
        return f"stream ended after {data.get('duration_ms')} ms, {data.get('bytes', 0)} bytes" + (
            f", error: {data['error']}" if data.get("error") else ""
        )
    if kind == "refused":
        prefix = f"{_request_line(data)} -> " if "method" in data else ""
        return prefix + _status(data.get("status") or {})
    if kind == "session":
        return f"{data.get('username') or '(no identity)'} started {data.get('command') or 'a session'}"
    if kind == "tool_call":
        return f"MCP tool {data.get('tool')} {_one_line(tool_arguments(data))}"
    if kind == "tool_result":
        return (
            f"MCP tool {data.get('tool')} answered the client ({tool_outcome(data)}, {data.get('chars', 0)} "
            f"characters): {_one_line(str(data.get('body', '')))}"
        )
    if kind == "refusals":
        seen = "; ".join(f"{s.get('what')} ({s.get('count')}x)" for s in data.get("samples") or [])
        return f"{data.get('refusals')} more refusals of client {data.get('client')} counted, not recorded: {seen}" + (
            f"; {data['others']} others" if data.get("others") else ""
        )
    return ", ".join(f"{k}={v}" for k, v in sorted(data.items()))


def _render(event: dict[str, Any]) -> str:
    kind, data = event["type"], event.get("data") or {}
    if kind == "session":
        return ""
    if kind == "request":
        body = _body(data)
        return f"> {_request_line(data)}\n" + (f"{body}\n" if body else "")
    if kind == "response" and data.get("stream"):
        return f"< {data.get('status')} (streaming)\n"
    if kind == "response":
        body = _body(data)
        return f"< {data.get('status')} ({data.get('duration_ms')} ms)\n" + (f"{body}\n" if body else "")
    if kind == "chunk":
        return _body(data)
    if kind == "refused":
        request = f"> {_request_line(data)}\n" if "method" in data else ""
        return f"{request}< refused {_status(data.get('status') or {})}\n"
    if kind == "tool_call":
        return f"mcp> {data.get('tool')} {tool_arguments(data)}\n"
    if kind == "tool_result":
        return f"mcp< {data.get('tool')}: {tool_outcome(data)}\n{_tool_text(data)}\n"
    return f"# {kind}: {summarize(event)}\n"


def replay_steps(session: dict[str, Any], events: Iterable[dict[str, Any]]) -> Iterator[Step]:
    """The command line first, then each request and what came back, spaced as recorded."""
    command = session.get("command") or f"(a client without Kubectl-Command: {session.get('user_agent') or '?'})"
    yield Step(
        0.0,
        f"$ {command}    # {session.get('username') or '(no identity)'} on "
        f"{session.get('connection')}, {session.get('started_at')}\n",
    )
    previous = parse_time(session["started_at"])
    for event in events:
        now = parse_time(event["time"])
        text = _render(event)
        if text:
            yield Step(max(0.0, now - previous), text)
            previous = now
