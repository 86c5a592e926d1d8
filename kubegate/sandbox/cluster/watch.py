"""Watch streams: chunked HTTP, one JSON event per line, written as it happens.

Semantics follow kube-apiserver's watch cache: no resourceVersion (or "0") starts with the current state
as ADDED events; resourceVersion N replays the later events from the bounded history or fails with an
ERROR event carrying 410 Expired; sendInitialEvents=true sends the state then a BOOKMARK annotated
`k8s.io/initial-events-end`. Selector changes turn MODIFIED into ADDED/DELETED as the cacher does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from . import tables
from .errors import ApiError, bad_request
from .kinds import Kind
from .negotiation import Target
from .store import Event, Store

BOOKMARK_INTERVAL = 30.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
Predicate = Callable[[dict[str, Any]], bool]


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def visible(event: Event, pred: Predicate) -> tuple[str, dict[str, Any]] | None:
    """The event a watcher with selector `pred` sees, if any."""
    if event.type == "ADDED":
        return ("ADDED", event.obj) if pred(event.obj) else None
    if event.type == "DELETED":
        return ("DELETED", event.obj) if pred(event.old or event.obj) else None
    was, now = pred(event.old or {}), pred(event.obj)
    if was and now:
        return "MODIFIED", event.obj
    if was:
        return "DELETED", event.obj
    return ("ADDED", event.obj) if now else None


class WatchStream:
    def __init__(self, kind: Kind, target: Target, include_object: str) -> None:
        self.kind = kind
        self.target = target
        self.include_object = include_object
        self.headers_sent = False

    def render(self, event_type: str, obj: dict[str, Any]) -> bytes:
        if event_type == "ERROR" or self.target.form == "json":
            body = obj
        elif self.target.form == "partial":
            body = tables.partial(obj, self.target.version)
        elif event_type == "BOOKMARK":
            body = tables.table(
                self.kind,
                [],
                {"resourceVersion": obj["metadata"]["resourceVersion"]},
                version=self.target.version,
                headers=False,
            )
        else:
            body = tables.table(
                self.kind,
                [obj],
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                self.include_object,
                self.target.version,
                headers=not self.headers_sent,
            )
            self.headers_sent = True
        return orjson.dumps({"type": event_type, "object": body}) + b"\n"

    def bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return self.render("BOOKMARK", {"kind": self.kind.kind, "apiVersion": self.kind.api_version, "metadata": meta})


def _parse_rv(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f'invalid resource version "{raw}"') from None


async def serve_watch(
    request: web.Request, store: Store, kind: Kind, namespace: str, pred: Predicate, target: Target
) -> web.StreamResponse:
    q = request.query
    rv_param = q.get("resourceVersion", "")
    bookmarks = _flag(q.get("allowWatchBookmarks"))
    initial = _flag(q.get("sendInitialEvents"))
    if "sendInitialEvents" in q and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
        raise ApiError(
            422,
            'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and "
            "allowWatchBookmarks to true",
            "Invalid",
        )
    timeout = q.get("timeoutSeconds")
    deadline = time.monotonic() + float(timeout) if timeout and timeout.isdigit() else None
    stream = WatchStream(kind, target, q.get("includeObject", "Metadata"))

    watcher = store.subscribe(kind.key, namespace)
    first: list[bytes] = []
    failed = False
    try:
        if initial or rv_param in ("", "0"):
            first = [stream.render("ADDED", o) for o in store.list(kind.key, namespace) if pred(o)]
            if initial:
                first.append(stream.bookmark(store.rv, initial_end=True))
        else:
            try:
                events = store.events_since(kind.key, namespace, _parse_rv(rv_param))
            except ApiError as exc:
                if exc.code != 410:
                    raise
                first, failed = [stream.render("ERROR", exc.status())], True
            else:
                first = [stream.render(*seen) for e in events if (seen := visible(e, pred))]
    except BaseException:
        store.unsubscribe(watcher)
        raise

    content_type = target.content_type if target.form != "json" else "application/json"
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        for chunk in first:
            await response.write(chunk)
        while not failed:
            wait = BOOKMARK_INTERVAL if bookmarks else None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = min(wait, left) if wait is not None else left
            try:
                event = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if bookmarks:
                    await response.write(stream.bookmark(store.rv))
                continue
            seen = visible(event, pred)
            if seen:
                await response.write(stream.render(*seen))
    finally:
        store.unsubscribe(watcher)
    await response.write_eof()
    return response
