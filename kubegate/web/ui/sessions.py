"""Recorded sessions for auditors: the list with `kubegate sessions list`'s filters and paging, one
session's timeline, its exec replay (asciinema-player), and downloads of the asciicast and JSONL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from kubegate.recording.asciicast import CAST_KINDS, cast_from_events
from kubegate.recording.query import BadQuery, SessionFilter, export_session, get_session, list_events, list_sessions
from kubegate.recording.recorder import OUTCOMES, VIA
from kubegate.recording.replay import parse_time
from kubegate.store.engine import Store, StoreError, describe
from kubegate.web.sessions_api import FILTERS, stream_jsonl
from kubegate.web.sessions_api import parse_time as parse_when
from kubegate.web.ui.pages import READERS, UI, Viewer, error_page, page, render
from kubegate.web.ui.timeline import entry, tool_calls

PAGE_SIZES = (25, 50, 100, 200)
EVENTS_PER_PAGE = 500


def _store(request: web.Request) -> Store:
    store = request.config_dict[UI].gateway.store
    if store is None:
        raise StoreError("the gateway has not opened its store yet")
    return store


def session_filter(query: dict[str, str]) -> tuple[SessionFilter, dict[str, str]]:
    """The filter a query asks for, and the non-empty fields to keep in paging links."""
    kept = {name: query[name].strip() for name in (*FILTERS, "since", "until") if query.get(name, "").strip()}
    values: dict[str, Any] = {name: kept[name] for name in FILTERS if name in kept}
    for name in ("since", "until"):
        if name in kept:
            values[name] = parse_when(kept[name])
    return SessionFilter(**values), kept


def _failure(request: web.Request, viewer: Viewer, exc: Exception) -> web.Response:
    return error_page(
        request,
        503,
        "Store unavailable",
        f"the session store is unavailable: {describe(exc)}; try again or contact the kubegate operator",
        viewer,
    )


@page(READERS)
async def list_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    query = {k: v for k, v in request.query.items()}
    raw_limit = query.get("limit", "50")
    limit = int(raw_limit) if raw_limit.isdigit() and int(raw_limit) in PAGE_SIZES else 50
    error, token = "", None
    items: list[dict[str, Any]] = []
    try:
        flt, kept = session_filter(query)
        items, token = await list_sessions(
            _store(request), flt, limit=limit, continue_token=query.get("continue") or None
        )
    except BadQuery as exc:
        error, kept = str(exc), {}
    except (StoreError, SQLAlchemyError, OSError) as exc:
        return _failure(request, viewer, exc)
    base = {**kept, "limit": str(limit)}
    next_url = f"/ui/sessions?{urlencode({**base, 'continue': token})}" if token else ""
    first_url = f"/ui/sessions?{urlencode(base)}" if query.get("continue") else ""
    return render(
        request,
        "sessions.html",
        viewer=viewer,
        title="Sessions",
        items=items,
        query=query,
        error=error,
        next_url=next_url,
        first_url=first_url,
        limit=limit,
        page_sizes=PAGE_SIZES,
        outcomes=OUTCOMES,
        vias=VIA,
    )


async def _all_events(store: Store, session_id: str) -> AsyncIterator[dict[str, Any]]:
    token: str | None = None
    while True:
        items, token = await list_events(store, session_id, limit=EVENTS_PER_PAGE, continue_token=token)
        for item in items:
            yield item
        if token is None:
            return


async def _has_terminal(store: Store, session_id: str) -> bool:
    async for event in _all_events(store, session_id):
        if event["type"] == "stream" and (event.get("data") or {}).get("kind") in CAST_KINDS:
            return True
    return False


@page(READERS)
async def session_page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    sid = request.match_info["id"]
    try:
        store = _store(request)
        session = await get_session(store, sid)
        if session is None:
            return error_page(
                request, 404, "No such session", f"session {sid} does not exist (or retention removed it)", viewer
            )
        events, token = await list_events(
            store, sid, limit=EVENTS_PER_PAGE, continue_token=request.query.get("continue") or None
        )
        has_cast = await _has_terminal(store, sid)
    except BadQuery as exc:
        return error_page(request, 400, "Bad page", str(exc), viewer)
    except (StoreError, SQLAlchemyError, OSError) as exc:
        return _failure(request, viewer, exc)
    start = parse_time(session["started_at"])
    timeline = [entry(e, start) for e in events]
    more_url = f"/ui/sessions/{sid}?{urlencode({'continue': token})}" if token else ""
    return render(
        request,
        "session.html",
        viewer=viewer,
        title=f"Session {sid}",
        session=session,
        timeline=timeline,
        more_url=more_url,
        has_cast=has_cast,
        tool_calls=tool_calls(events),
        claims=sorted(session["claims"].items()),
    )


@page(READERS)
async def cast(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The session's exec and attach streams as an asciicast v2 file, built by recording.asciicast."""
    sid = request.match_info["id"]
    try:
        store = _store(request)
        session = await get_session(store, sid)
        found = cast_from_events(session, [e async for e in _all_events(store, sid)]) if session else None
    except (StoreError, SQLAlchemyError, OSError) as exc:
        return _failure(request, viewer, exc)
    if found is None:
        return error_page(
            request, 404, "No terminal recording", f"session {sid} has no exec or attach stream to replay", viewer
        )
    headers = {"Cache-Control": "no-store"}
    if request.query.get("download"):
        headers["Content-Disposition"] = f'attachment; filename="kubegate-session-{sid}.cast"'
    return web.Response(text=found.dumps(), content_type="application/x-asciicast", headers=headers)


@page(READERS)
async def export(request: web.Request, viewer: Viewer) -> web.StreamResponse:
    """The JSONL export of `kubegate sessions export`, as a download."""
    sid = request.match_info["id"]
    try:
        lines = export_session(_store(request), sid)
        first = await anext(lines, None)
    except (StoreError, SQLAlchemyError, OSError) as exc:
        return _failure(request, viewer, exc)
    if first is None:
        return error_page(request, 404, "No such session", f"session {sid} does not exist", viewer)
    return await stream_jsonl(
        request,
        first,
        lines,
        {"Cache-Control": "no-store", "Content-Disposition": f'attachment; filename="kubegate-session-{sid}.jsonl"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sessions", list_page)
    app.router.add_get(r"/sessions/{id}/cast", cast)
    app.router.add_get(r"/sessions/{id}/export.jsonl", export)
    app.router.add_get(r"/sessions/{id}", session_page)
