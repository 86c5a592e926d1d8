"""Objects in memory, one global resourceVersion counter, a bounded event history and watch fan-out.

Every write bumps the counter by one and records one event, so a watch from resourceVersion N can be
served exactly from the history when N is still inside it, and is refused with 410 Expired when it is
not, as kube-apiserver's watch cache does. All methods run on the server's event loop thread.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import expired


def clone(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy (orjson round trip: objects are always plain JSON)."""
    result: dict[str, Any] = orjson.loads(orjson.dumps(obj))
    return result


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    key: str  # Kind.key
    obj: dict[str, Any]
    old: dict[str, Any] | None = None

    @property
    def namespace(self) -> str:
        ns: str = self.obj.get("metadata", {}).get("namespace", "")
        return ns


@dataclass(eq=False)
class Watcher:
    key: str
    namespace: str
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self, history_limit: int = 2000) -> None:
        self.rv = 0
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.history: deque[Event] = deque(maxlen=history_limit)
        self._watchers: set[Watcher] = set()

    def get(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self._objects.get(key, {}).get((namespace, name))
        return clone(obj) if obj is not None else None

    def list(self, key: str, namespace: str = "") -> list[dict[str, Any]]:
        """Objects of one kind, in one namespace or all, sorted as etcd keys sort."""
        items = self._objects.get(key, {})
        keys = sorted(k for k in items if not namespace or k[0] == namespace)
        return [clone(items[k]) for k in keys]

    def in_namespace(self, namespace: str) -> builtins.list[tuple[str, str]]:
        """(kind key, name) of every object in `namespace`: what deleting the namespace removes."""
        return sorted((key, name) for key, items in self._objects.items() for (ns, name) in items if ns == namespace)

    def write(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace `obj`, stamping the next resourceVersion; returns the stored copy."""
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        bucket = self._objects.setdefault(key, {})
        old = bucket.get(ident)
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        stored = clone(obj)
        bucket[ident] = stored
        self._publish(Event(self.rv, "MODIFIED" if old is not None else "ADDED", key, stored, old))
        return clone(stored)

    def remove(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        bucket = self._objects.get(key, {})
        old = bucket.pop((namespace, name), None)
        if old is None:
            return None
        self.rv += 1
        final = clone(old)
        final["metadata"]["resourceVersion"] = str(self.rv)
        self._publish(Event(self.rv, "DELETED", key, final, old))
        return clone(final)

    def _publish(self, event: Event) -> None:
        self.history.append(event)
        for w in self._watchers:
            if w.key == event.key and (not w.namespace or w.namespace == event.namespace):
                w.queue.put_nowait(event)

    def subscribe(self, key: str, namespace: str) -> Watcher:
        watcher = Watcher(key, namespace)
        self._watchers.add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def events_since(self, key: str, namespace: str, rv: int) -> builtins.list[Event]:
        """Events after `rv` for one kind, or 410 Expired when the history no longer reaches back."""
        oldest = self.history[0].rv if self.history else self.rv + 1
        if rv < oldest - 1:
            raise expired(f"too old resource version: {rv} ({oldest - 1})")
        return [e for e in self.history if e.rv > rv and e.key == key and (not namespace or e.namespace == namespace)]
