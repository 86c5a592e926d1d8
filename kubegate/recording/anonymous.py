"""Refusals of callers kubegate could not identify, recorded per client and window, not one by one.

Anyone who reaches the port can send them, so each must cost the store next to nothing: the first
refusal of a client in a window is recorded (path, query and reason cut short, no body); the rest are
only counted, and recorded as one `refusals` event when the window closes. At most `max_clients`
clients are followed at once; refusals from any further client are counted together as client "*".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 60.0
MAX_CLIENTS = 1024
MAX_TEXT = 256
MAX_SAMPLES = 5
OVERFLOW = "*"
SWEEP_INTERVAL = 1.0


def cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(slots=True)
class Window:
    """One client's refusals since `started`; the first is recorded at once in `session_id`."""

    client: str
    started: float
    last: float
    session_id: str = ""
    count: int = 0
    samples: dict[str, int] = field(default_factory=dict)
    others: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "from": self.started,
            "to": self.last,
            "refusals": self.count,
            "samples": [{"what": what, "count": n} for what, n in self.samples.items()],
            "others": self.others,
        }


class AnonymousRefusals:
    """The open windows, bounded in number and size; the recorder stage writes what they return."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS, max_clients: int = MAX_CLIENTS) -> None:
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        self._windows: dict[str, Window] = {}
        self._swept = float("-inf")

    def __len__(self) -> int:
        return len(self._windows)

    def add(self, client: str, what: str, now: float) -> Window | None:
        """Count one refusal; returns the window it opens (record this refusal then), else None."""
        key = client if client in self._windows or len(self._windows) < self.max_clients else OVERFLOW
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(key, now, now)
            return window
        window.last = now
        window.count += 1
        what = cut(what, 2 * MAX_TEXT)
        if what in window.samples or len(window.samples) < MAX_SAMPLES:
            window.samples[what] = window.samples.get(what, 0) + 1
        else:
            window.others += 1
        return None

    def closed(self, now: float) -> list[Window]:
        """Windows older than window_seconds, removed (looked for at most once a second); those with
        refusals after the first are returned for one summary event each."""
        if now - self._swept < SWEEP_INTERVAL:
            return []
        self._swept = now
        done = [k for k, w in self._windows.items() if now - w.started >= self.window_seconds]
        return [w for w in (self._windows.pop(k) for k in done) if w.count]

    def drain(self) -> list[Window]:
        """Every open window with refusals to report (at shutdown)."""
        windows, self._windows = self._windows, {}
        return [w for w in windows.values() if w.count]
