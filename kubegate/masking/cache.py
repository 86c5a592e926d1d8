"""Masked watch events, remembered by what they were: masking an event once serves every watcher.

kube-apiserver sends a watch event to every watcher of the object in the same bytes (its cacher
serializes an event once for all of them), so a gateway in front of many watchers masks the same
line many times. The key is the whole line with the profiles and kind it was masked under, so a
hit is the output masking would produce, with the number of values it masked (each watcher's response
counts them). Bounded in bytes; the least recently used go first.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

Key = tuple[Hashable, bytes]
Masked = tuple[bytes, int]
"""A masked line and how many values masking hid in it."""


class MaskedLines:
    def __init__(self, max_bytes: int = 4 << 20, max_line: int = 64 << 10) -> None:
        self.max_bytes = max_bytes
        self.max_line = max_line
        self.hits = 0
        self._lines: dict[Key, Masked] = {}
        self._size = 0

    def get(self, context: Hashable, line: bytes, mask: Callable[[bytes], Masked]) -> Masked:
        """mask(line), from memory when this line was masked under this context before."""
        if len(line) > self.max_line:
            return mask(line)
        key = (context, line)
        found = self._lines.pop(key, None)
        if found is not None:
            self._lines[key] = found
            self.hits += 1
            return found
        masked = mask(line)
        self._lines[key] = masked
        self._size += len(line) + len(masked[0])
        while self._size > self.max_bytes:
            old = next(iter(self._lines))
            self._size -= len(old[1]) + len(self._lines.pop(old)[0])
        return masked
