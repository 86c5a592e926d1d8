"""Container logs: text that tests and the demo append, served like the kubelet's log endpoint
(`container`, `tailLines`, `timestamps`, `limitBytes`), and streamed to followers as it arrives."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import bad_request

LOG_ANNOTATION = "sandbox.kubegate.dev/log"


@dataclass(frozen=True)
class Line:
    """A piece of log output: a whole line, or part of one when text was appended without a newline
    (followers get it at once, as a container writing half a line is seen through the kubelet)."""

    time: str
    container: str | None  # None: the pod's default (first) container
    text: str
    starts: bool = True
    ends: bool = True

    def render(self, timestamps: bool) -> bytes:
        prefix = f"{self.time} " if timestamps and self.starts else ""
        return f"{prefix}{self.text}{chr(10) if self.ends else ''}".encode()


def _stamp() -> str:
    t = dt.datetime.now(dt.UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond * 1000:09d}Z"


class LogBook:
    """Lines per pod, plus the queues of the requests following them (None on a queue ends the stream)."""

    def __init__(self) -> None:
        self._lines: dict[tuple[str, str], list[Line]] = {}
        self._followers: dict[tuple[str, str], set[asyncio.Queue[Line | None]]] = {}

    def append(self, namespace: str, pod: str, text: str, container: str | None = None, partial: bool = False) -> None:
        """Append lines; with `partial`, text not ending in a newline stays an open line that the
        next append continues."""
        lines = self._lines.setdefault((namespace, pod), [])
        continues = bool(lines) and not lines[-1].ends
        body = text[:-1] if text.endswith("\n") else text
        parts = body.split("\n")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            line = Line(
                _stamp(),
                container,
                part,
                starts=not (i == 0 and continues),
                ends=not (last and partial and not text.endswith("\n")),
            )
            lines.append(line)
            for q in self._followers.get((namespace, pod), set()):
                q.put_nowait(line)

    def forget(self, namespace: str, pod: str) -> None:
        """The pod is gone: drop its lines and end every follow stream."""
        self._lines.pop((namespace, pod), None)
        for q in self._followers.pop((namespace, pod), set()):
            q.put_nowait(None)

    def lines(self, namespace: str, pod: str) -> list[Line]:
        return list(self._lines.get((namespace, pod), []))

    def follow(self, namespace: str, pod: str) -> asyncio.Queue[Line | None]:
        q: asyncio.Queue[Line | None] = asyncio.Queue()
        self._followers.setdefault((namespace, pod), set()).add(q)
        return q

    def unfollow(self, namespace: str, pod: str, q: asyncio.Queue[Line | None]) -> None:
        self._followers.get((namespace, pod), set()).discard(q)


def _int_param(query: Any, name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f'{name}: Invalid value: "{raw}": must be an integer') from None


def choose_container(pod: dict[str, Any], requested: str) -> str:
    spec = pod.get("spec") or {}
    names = [c["name"] for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]]
    main = [c["name"] for c in spec.get("containers") or []]
    name = pod["metadata"]["name"]
    if not requested:
        default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if default in names:
            return str(default)
        if len(main) != 1:
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
        return str(main[0])
    if requested not in names:
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


async def serve_log(request: web.Request, book: LogBook, pod: dict[str, Any]) -> web.StreamResponse:
    query = request.query
    container = choose_container(pod, query.get("container", ""))
    default = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
    ns, name = pod["metadata"].get("namespace", ""), pod["metadata"]["name"]
    timestamps = query.get("timestamps", "false").lower() in ("true", "1")
    tail, limit = _int_param(query, "tailLines"), _int_param(query, "limitBytes")
    follow = query.get("follow", "false").lower() in ("true", "1")

    def mine(line: Line) -> bool:
        return line.container == container or (line.container is None and container == default)

    queue = book.follow(ns, name) if follow else None
    lines = [ln for ln in book.lines(ns, name) if mine(ln)]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    body = b"".join(ln.render(timestamps) for ln in lines)
    if limit is not None:
        body = body[:limit]
    if queue is None:
        return web.Response(body=body, content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        if body:
            await response.write(body)
        while (line := await queue.get()) is not None:
            if mine(line):
                await response.write(line.render(timestamps))
    finally:
        book.unfollow(ns, name, queue)
    await response.write_eof()
    return response
