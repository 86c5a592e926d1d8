"""exec and attach sessions as asciicast v2: recorded as they flow, exported for `asciinema play`,
and replayed in a terminal with their timing.

While a stream runs, `CastBuilder` turns what passes into asciicast events (`o` for stdout and
stderr, `i` for stdin, `r` for a resize as `WxH`), timed from the stream's start, and hands them out
in batches so a busy stream costs a few recorded events per second instead of one per message.
Bytes become text with an incremental UTF-8 decoder (a character split across messages stays
whole); bytes that are not UTF-8 (a `kubectl cp` tar) are kept as `\\xNN` escapes.

In the store a stream is a `stream` event (what was opened) followed by `cast` events carrying the
flow id and a list of `[time, code, data]`; `cast_from_events` rebuilds the cast from a session.
"""

from __future__ import annotations

import codecs
import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

DEFAULT_SIZE = (80, 24)
BATCH_BYTES = 64 * 1024
BATCH_SECONDS = 1.0
CAST_KINDS = frozenset({"exec", "attach"})


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")


@dataclass
class CastBuilder:
    """The asciicast events of one stream, batched."""

    clock: Callable[[], float] = time.monotonic
    start: float = field(default=0.0)
    events: list[list[Any]] = field(default_factory=list)
    size: int = 0
    first: float | None = None
    _decoders: dict[str, tuple[str, codecs.IncrementalDecoder]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start = self.start or self.clock()

    def _add(self, code: str, text: str) -> None:
        if not text:
            return
        now = self.clock()
        if self.first is None:
            self.first = now
        self.events.append([round(now - self.start, 6), code, text])
        self.size += len(text)

    def write(self, code: str, data: bytes, stream: str | None = None) -> None:
        """Output (`o`) or input (`i`) bytes; `stream` names a decoder of its own (stdout, stderr)."""
        key = stream or code
        found = self._decoders.get(key)
        if found is None:
            found = self._decoders[key] = (code, _decoder())
        self._add(code, found[1].decode(data))

    def resize(self, width: int, height: int) -> None:
        self._add("r", f"{width}x{height}")

    def ready(self) -> bool:
        return bool(self.events) and (self.size >= BATCH_BYTES or self.clock() - (self.first or 0) >= BATCH_SECONDS)

    def take(self, final: bool = False) -> list[list[Any]]:
        """The events collected so far (with `final`, also what the decoders still hold)."""
        if final:
            for code, decoder in self._decoders.values():
                self._add(code, decoder.decode(b"", final=True))
        events, self.events, self.size, self.first = self.events, [], 0, None
        return events


@dataclass
class Cast:
    header: dict[str, Any]
    events: list[list[Any]]

    def dumps(self) -> str:
        """The asciicast v2 file: the header line, then one JSON array per event."""
        lines = [orjson.dumps(self.header).decode()]
        lines += [orjson.dumps(e).decode() for e in self.events]
        return "\n".join(lines) + "\n"


def _time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def cast_from_events(session: dict[str, Any], events: Iterable[dict[str, Any]]) -> Cast | None:
    """The asciicast of a session's exec and attach streams, one after the other on one timeline;
    None when the session has none."""
    opened: dict[str, dict[str, Any]] = {}
    casts: dict[str, list[list[Any]]] = {}
    for event in events:
        data = event.get("data") or {}
        flow = str(data.get("flow"))
        if event["type"] == "stream" and data.get("kind") in CAST_KINDS:
            opened[flow] = {**data, "at": _time(event["time"])}
            casts[flow] = []
        elif event["type"] == "cast" and flow in casts:
            casts[flow].extend(data.get("events") or [])
    if not opened:
        return None
    first = min(o["at"] for o in opened.values())
    merged: list[list[Any]] = []
    for flow, info in sorted(opened.items(), key=lambda item: item[1]["at"]):
        offset = info["at"] - first
        merged += [[round(t + offset, 6), code, text] for t, code, text in casts[flow]]
    merged.sort(key=lambda e: e[0])
    size = next((e[2] for e in merged if e[1] == "r"), None)
    width, height = DEFAULT_SIZE
    if size:
        w, _, h = size.partition("x")
        width, height = int(w), int(h)
    info = min(opened.values(), key=lambda o: o["at"])
    command = " ".join(info.get("command") or []) or info.get("kind", "")
    title = f"{info.get('kind')} {info.get('namespace', '')}/{info.get('pod', '')}: {command}"
    header: dict[str, Any] = {
        "version": 2,
        "width": width,
        "height": height,
        "timestamp": int(first),
        "title": title,
        "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
    }
    if session.get("username"):
        header["title"] += f" ({session['username']})"
    return Cast(header, merged)


def play(
    cast: Cast,
    write: Callable[[str], None],
    sleep: Callable[[float], None],
    *,
    speed: float = 1.0,
    idle_limit: float | None = None,
) -> None:
    """Write the output events with their pauses (divided by `speed`, each capped at `idle_limit`)."""
    previous = 0.0
    for t, code, text in cast.events:
        if code != "o":
            continue
        pause = (t - previous) / speed
        if idle_limit is not None:
            pause = min(pause, idle_limit)
        if pause > 0:
            sleep(pause)
        previous = t
        write(text)
