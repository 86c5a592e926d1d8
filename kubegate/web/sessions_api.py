"""Admin API for recorded sessions: list, show, events, export. Only auditors and admins may read."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from kubegate.durations import parse_duration
from kubegate.kube.status import Refused, status_response
from kubegate.recording.query import BadQuery, SessionFilter, export_session, get_session, list_events, list_sessions
from kubegate.recording.recorder import OUTCOMES, VIA
from kubegate.store.engine import Store, StoreError, describe
from kubegate.web.auth import Authorize

StoreGetter = Callable[[], Store]
READERS = {"auditor", "admin"}
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
FILTERS = ("user", "group", "connection", "verb", "resource", "namespace", "command", "outcome", "via")


def parse_time(value: str, *, now: float | None = None) -> float:
    """RFC 3339 ('2025-01-31T12:00:00Z'), UNIX seconds, or a duration meaning that long ago ('2h')."""
    now = time.time() if now is None else now
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadQuery(f"{value!r} is not a time: use RFC 3339, UNIX seconds or a duration such as 2h") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


def _filter(request: web.Request) -> SessionFilter:
    q = request.query
    unknown = sorted(set(q) - {*FILTERS, "since", "until", "limit", "continue"})
    if unknown:
        raise BadQuery(f"unknown query parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {name: q[name] for name in FILTERS if q.get(name)}
    if values.get("outcome", "ok") not in OUTCOMES:
        raise BadQuery(f"outcome must be one of {', '.join(OUTCOMES)}")
    if values.get("via", "mcp") not in VIA:
        raise BadQuery(f"via must be one of {', '.join(VIA)}")
    for name in ("since", "until"):
        if q.get(name):
            values[name] = parse_time(q[name])
    return SessionFilter(**values)


def _json(obj: object) -> web.Response:
    return web.Response(body=orjson.dumps(obj), content_type="application/json")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _guarded(authorize: Authorize, handler: Handler) -> Handler:
    """Authorize first; turn refusals, bad queries and store failures into Kubernetes Status answers."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            await authorize(request, READERS)
            return await handler(request)
        except Refused as exc:
            return exc.response()
        except BadQuery as exc:
            return status_response(400, f"{exc}", "BadRequest")
        except (StoreError, SQLAlchemyError, OSError) as exc:
            return status_response(
                503,
                f"the session store is unavailable: {describe(exc)}; try again or contact the kubegate operator",
                "ServiceUnavailable",
            )

    return run


async def stream_jsonl(
    request: web.Request, first: object, rest: AsyncIterator[object], headers: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """A session export as JSON lines, written as the store yields them (the first already read, so a
    missing session was answered with a 404 before anything was sent)."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", **(headers or {})})
    await response.prepare(request)
    await response.write(orjson.dumps(first) + b"\n")
    async for line in rest:
        await response.write(orjson.dumps(line) + b"\n")
    await response.write_eof()
    return response


def setup_routes(app: web.Application, store_getter: StoreGetter, authorize: Authorize) -> None:
    """GET /api/v1/sessions[/{id}[/events|/export]]; lists page with `limit` and `continue`."""

    def not_found(session_id: str) -> web.Response:
        return status_response(
            404,
            f"session {session_id} does not exist (or retention removed it); list sessions with GET /api/v1/sessions",
            "NotFound",
        )

    async def sessions(request: web.Request) -> web.StreamResponse:
        items, token = await list_sessions(
            store_getter(),
            _filter(request),
            limit=_limit(request),
            continue_token=request.query.get("continue") or None,
        )
        return _json({"kind": "SessionList", "items": items, "metadata": {"continue": token or ""}})

    async def session(request: web.Request) -> web.StreamResponse:
        sid = request.match_info["id"]
        found = await get_session(store_getter(), sid)
        return _json(found) if found else not_found(sid)

    async def session_events(request: web.Request) -> web.StreamResponse:
        sid = request.match_info["id"]
        limit, token = _limit(request), request.query.get("continue") or None
        if token is None and await get_session(store_getter(), sid) is None:
            return not_found(sid)
        items, token = await list_events(store_getter(), sid, limit=limit, continue_token=token)
        return _json({"kind": "EventList", "items": items, "metadata": {"continue": token or ""}})

    async def export(request: web.Request) -> web.StreamResponse:
        sid = request.match_info["id"]
        if request.query.get("format", "jsonl") != "jsonl":
            raise BadQuery("format must be jsonl")
        lines = export_session(store_getter(), sid)
        first = await anext(lines, None)
        if first is None:
            return not_found(sid)
        return await stream_jsonl(request, first, lines)

    app.router.add_get("/api/v1/sessions", _guarded(authorize, sessions))
    app.router.add_get("/api/v1/sessions/{id}", _guarded(authorize, session))
    app.router.add_get("/api/v1/sessions/{id}/events", _guarded(authorize, session_events))
    app.router.add_get("/api/v1/sessions/{id}/export", _guarded(authorize, export))
