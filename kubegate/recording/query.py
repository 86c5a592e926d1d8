"""Read sessions and events back: filtered, newest first, paged with opaque continue tokens."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from kubegate.store.engine import Store
from kubegate.store.tables import events, session_groups, sessions


class BadQuery(ValueError):
    """A filter or continue token the caller must fix."""


@dataclass(frozen=True, slots=True)
class SessionFilter:
    user: str | None = None
    group: str | None = None
    connection: str | None = None
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    command: str | None = None
    outcome: str | None = None
    via: str | None = None
    since: float | None = None
    until: float | None = None


def isotime(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def encode_continue(value: list[Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


def decode_continue(token: str, shape: tuple[type, ...]) -> list[Any]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError as exc:
        raise BadQuery("continue token is not one kubegate issued") from exc
    if not (
        isinstance(value, list)
        and len(value) == len(shape)
        and all(isinstance(v, t) for v, t in zip(value, shape, strict=True))
    ):
        raise BadQuery("continue token is not one kubegate issued")
    return value


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(flt: SessionFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if flt.user:
        where.append(sa.or_(sessions.c.username == flt.user, sessions.c.subject == flt.user))
    if flt.group:
        where.append(
            sa.exists().where(session_groups.c.session_id == sessions.c.id, session_groups.c.name == flt.group)
        )
    if flt.connection:
        where.append(sessions.c.connection == flt.connection)
    if flt.command:
        where.append(sessions.c.command.like(_like(flt.command), escape="\\"))
    if flt.outcome:
        where.append(sessions.c.outcome == flt.outcome)
    if flt.via:
        where.append(sessions.c.via == flt.via)
    if flt.since is not None:
        where.append(sessions.c.ended_at >= flt.since)
    if flt.until is not None:
        where.append(sessions.c.started_at <= flt.until)
    request_match = [
        events.c[name] == value
        for name, value in (("verb", flt.verb), ("resource", flt.resource), ("namespace", flt.namespace))
        if value
    ]
    if request_match:
        where.append(sa.exists().where(events.c.session_id == sessions.c.id, *request_match))
    return where


TARGET_EVENTS = ("request", "refused", "access_request")
"""Events that carry what a request asked for (`data.info`): answered, refused, or held for approval."""


async def _targets(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """What each session asked for: its first resource request (kubectl's discovery comes before it), else
    its first request at all; verb, resource, subresource, namespace, name and path."""
    out: dict[str, dict[str, Any]] = {}
    for resource_only in (True, False):
        missing = [i for i in ids if i not in out]
        if not missing:
            break
        where = [events.c.session_id.in_(missing), events.c.type.in_(TARGET_EVENTS)]
        if resource_only:
            where.append(events.c.resource.is_not(None))
        first = sa.select(sa.func.min(events.c.seq)).where(*where).group_by(events.c.session_id)
        query = sa.select(events.c.session_id, events.c.data).where(events.c.seq.in_(first))
        for row in (await conn.execute(query)).all():
            info = orjson.loads(row.data).get("info") or {}
            if isinstance(info, dict) and info.get("verb"):
                out[row.session_id] = {
                    k: info.get(k) or "" for k in ("verb", "resource", "subresource", "namespace", "name", "path")
                }
    return out


def describe_target(target: dict[str, Any] | None) -> str:
    """What the session's first request asked for, as kubectl would say it: `delete namespaces tmp`."""
    if not target:
        return "-"
    if not target["resource"]:
        return f"{target['verb']} {target['path']}"
    what = target["resource"] + (f"/{target['subresource']}" if target["subresource"] else "")
    return " ".join(
        p for p in (target["verb"], what, target["name"], target["namespace"] and f"-n {target['namespace']}") if p
    )


def session_dict(row: sa.Row[Any], target: dict[str, Any] | None = None) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "kubectl_session": m["kubectl_session"],
        "subject": m["subject"],
        "username": m["username"],
        "issuer": m["issuer"],
        "groups": m["groups"],
        "claims": m["claims"],
        "connection": m["connection"],
        "command": m["command"],
        "user_agent": m["user_agent"],
        "source": m["source"],
        "started_at": isotime(m["started_at"]),
        "ended_at": isotime(m["ended_at"]),
        "outcome": m["outcome"],
        "requests": m["requests"],
        "via": m["via"],
        "target": target,
    }


def event_dict(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "session_id": row.session_id,
        "time": isotime(row.ts),
        "type": row.type,
        "data": orjson.loads(row.data),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


async def list_sessions(
    store: Store, flt: SessionFilter, *, limit: int, continue_token: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Sessions matching `flt`, newest first; the token continues after the last one returned."""
    query = sa.select(sessions).where(*_where(flt))
    if continue_token:
        started, sid = decode_continue(continue_token, (float, str))
        query = query.where(
            sa.or_(sessions.c.started_at < started, sa.and_(sessions.c.started_at == started, sessions.c.id < sid))
        )
    query = query.order_by(sessions.c.started_at.desc(), sessions.c.id.desc()).limit(limit + 1)
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        targets = await _targets(conn, [r.id for r in rows])
    token = encode_continue([rows[-1].started_at, rows[-1].id]) if more else None
    return [session_dict(r, targets.get(r.id)) for r in rows], token


async def get_session(store: Store, session_id: str) -> dict[str, Any] | None:
    async with store.read() as conn:
        row = (await conn.execute(sa.select(sessions).where(sessions.c.id == session_id))).first()
        targets = await _targets(conn, [session_id]) if row else {}
    return session_dict(row, targets.get(session_id)) if row else None


async def list_events(
    store: Store, session_id: str, *, limit: int, continue_token: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """A session's events in chain order."""
    query = sa.select(events).where(events.c.session_id == session_id)
    if continue_token:
        (after,) = decode_continue(continue_token, (int,))
        query = query.where(events.c.seq > after)
    async with store.read() as conn:
        rows = (await conn.execute(query.order_by(events.c.seq).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [event_dict(r) for r in rows], encode_continue([rows[-1].seq]) if more else None


async def export_session(store: Store, session_id: str, *, page: int = 500) -> AsyncIterator[dict[str, Any]]:
    """One session as JSON lines for a SIEM: the session, then each event with its session id."""
    session = await get_session(store, session_id)
    if session is None:
        return
    yield {"kind": "session", **session}
    token: str | None = None
    while True:
        items, token = await list_events(store, session_id, limit=page, continue_token=token)
        for item in items:
            yield {"kind": "event", **item}
        if token is None:
            return
