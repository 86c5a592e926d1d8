"""Masking credentials in text as it streams: log lines, exec output, and free-text fields.

A secret may arrive split across chunks, so the masker holds back the shortest tail that could
still grow into a match (the `regex` module's partial matching says where that tail starts) and
releases everything before it at once; a newline always releases the line before it, because
detectors match within a line. PEM private keys are a block: the BEGIN line passes, the body is
replaced by one marker as it arrives (never buffered), and the END line passes.

Two bounds keep memory flat on hostile input: a held tail longer than `max_hold` is released
masked as if the stream ended there, and the rest of that line is dropped (fail closed); a PEM
body longer than `max_hold` is taken for something else than a key and scanning resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import regex

from kubegate.masking.detectors import PEM_BEGIN, PEM_END, TRIGGER_SEARCH_BYTES, TRIGGER_SEARCH_TEXT, Detector
from kubegate.masking.marker import MARKER_BYTES

CONTEXT = 64  # bytes of already released input kept so lookbehinds see across chunk boundaries
MAX_HOLD = 64 * 1024
CLEAN_MAX, CLEAN_MAX_CHARS = 4096, 256  # TextRules.clean: at most 1 MiB of recent clean strings
_TO_LINE_END = regex.compile(rb"[^\n]*")
_Found = tuple[int, int, Detector, "regex.Match[bytes]"]  # start, end, detector, match


@dataclass(frozen=True, slots=True)
class TextRules:
    """The detectors of one mask plan; `stream()` for a byte stream, `mask()` for one string."""

    detectors: tuple[Detector, ...]
    pem: bool
    triggered: bool = field(init=False, compare=False)  # every detector is a built-in: its matches hold a trigger
    # Strings with nothing to mask, seen lately: the same names ("secret-values" in every decision recorded,
    # a volume's "token" path in every pod) would otherwise be searched, or run every detector, each time.
    # Only clean strings are kept, so the cache never holds a credential.
    clean: dict[str, None] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggered", all(d.triggered for d in self.detectors))

    def __bool__(self) -> bool:
        return bool(self.detectors) or self.pem

    def mask(self, value: str) -> str:
        # Most strings masking scans (every string of every object) are ones it saw lately (the same names,
        # paths and images in every object of a list, every event of a watch): a dictionary lookup. The
        # others end after one regex search when they hold no trigger and no PEM block, so no built-in
        # detector can match. str.lower() lowers at least the ASCII letters bytes.lower() would, so it finds
        # every trigger the byte scanner would.
        if value in self.clean:
            return value
        if not self.triggered or TRIGGER_SEARCH_TEXT(value.lower()) is not None:
            raw = value.encode()
            masker = self.stream()
            out = masker.feed(raw) + masker.flush()
            if out != raw:
                return out.decode(errors="replace")
        if len(value) <= CLEAN_MAX_CHARS:
            if len(self.clean) >= CLEAN_MAX:
                self.clean.clear()
            self.clean[value] = None
        return value

    def stream(self, max_hold: int = MAX_HOLD) -> TextMasker:
        return TextMasker(self.detectors, self.pem, max_hold)


class TextMasker:
    """Streaming detector: `feed` returns what is safe to send now, `flush` the rest at the end."""

    def __init__(self, detectors: Sequence[Detector], pem: bool, max_hold: int = MAX_HOLD) -> None:
        self._detectors = tuple(detectors)
        self._pem = pem
        self._max_hold = max_hold
        self._buf = b""
        self._ctx = b""
        self._in_pem = False
        self._pem_dropped = 0
        self._drop_line = False

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self._buf += data
        return self._drain(final=False)

    def flush(self) -> bytes:
        out = self._drain(final=True)
        self._buf = b""
        return out

    def _drain(self, final: bool) -> bytes:
        out = bytearray()
        buf = self._buf
        while buf:
            if self._drop_line:
                end = _TO_LINE_END.match(buf).end()
                buf = buf[end:]
                if not buf:
                    break
                self._drop_line = False
                continue
            if self._in_pem:
                buf = self._pem_body(buf, out, final)
                if self._in_pem:
                    break
                continue
            begin = PEM_BEGIN.search(buf) if self._pem and b"-----BEGIN" in buf else None
            text = self._ctx + buf
            base = len(self._ctx)
            if begin is not None:
                cut = base + begin.start()
                _, found = self._scan(text, base, cut, final=True)
                out += self._release(text, base, cut, found)
                out += begin.group() + MARKER_BYTES
                self._ctx = text[max(0, base + begin.end() - CONTEXT) : base + begin.end()]
                buf = buf[begin.end() :]
                self._in_pem, self._pem_dropped = True, 0
                continue
            hold, found = self._scan(text, base, len(text), final)
            if len(text) - hold > self._max_hold:
                hold, found = self._scan(text, base, len(text), final=True)
                self._drop_line = True
            out += self._release(text, base, hold, found)
            self._ctx = text[max(0, hold - CONTEXT) : hold]
            buf = text[hold:]
            break
        self._buf = buf
        return bytes(out)

    def _pem_body(self, buf: bytes, out: bytearray, final: bool) -> bytes:
        """Drop a private key's body, but not its line breaks: the log keeps its lines (and line count)."""
        end = PEM_END.search(buf)
        if end is not None:
            out += b"\n" * buf.count(b"\n", 0, end.start()) + end.group()
            self._ctx = (self._ctx + buf[: end.end()])[-CONTEXT:]
            self._in_pem = False
            return buf[end.end() :]
        keep_from = len(buf) if final else _partial_start(PEM_END, buf, 0, len(buf))
        out += b"\n" * buf.count(b"\n", 0, keep_from)
        self._pem_dropped += keep_from
        if self._pem_dropped > self._max_hold:
            self._in_pem = False
        return buf[keep_from:]

    def _scan(self, text: bytes, start: int, end: int, final: bool) -> tuple[int, list[_Found]]:
        """Where to stop releasing (everything from there on may still be part of a secret), and the
        complete matches in text[start:end]."""
        hold = end
        found: list[_Found] = []
        tail = end if final else text.rfind(b"\n", start, end) + 1 or start
        windows = self._windows(text, start, tail, end)
        for d in self._detectors:
            for ws, we in windows if d.triggered else ((start, end),):
                for m in d.pattern.finditer(text, ws, we, partial=not final and we == end):
                    s, e = m.span()
                    if s == e:
                        continue
                    if not final and (m.partial or e == end):
                        hold = min(hold, s)
                        break
                    found.append((s, e, d, m))
        if final:
            return end, found
        if self._pem:
            hold = min(hold, _partial_start(PEM_BEGIN, text, tail, end))
        changed = True
        while changed:
            changed = False
            for s, e, _, _ in found:
                if s < hold < e:
                    hold, changed = s, True
        if hold < tail:  # only a detector spanning lines gets here: a newline releases the line anyway
            hold = max([tail, *(e for s, e, _, _ in found if s < tail < e)])
        return hold, found

    @staticmethod
    def _windows(text: bytes, start: int, tail: int, end: int) -> list[tuple[int, int]]:
        """The lines of text[start:tail] that hold a trigger, plus the unfinished line text[tail:end]:
        the only places a built-in detector can match or start to match."""
        lowered = text[start:tail].lower()
        windows: list[tuple[int, int]] = []
        found = TRIGGER_SEARCH_BYTES(lowered)
        while found is not None:  # lines in order: a trigger's line, then search on from its end
            i = found.start()
            line_end = lowered.find(b"\n", found.end()) + 1 or len(lowered)
            windows.append((start + lowered.rfind(b"\n", 0, i) + 1, start + line_end))
            found = TRIGGER_SEARCH_BYTES(lowered, line_end)
        if tail < end:
            windows.append((tail, end))
        return windows

    def _release(self, text: bytes, start: int, stop: int, found: list[_Found]) -> bytes:
        """text[start:stop] with every complete match inside it masked."""
        regions = sorted(span for _, e, d, m in found if e <= stop for span in d.secret_spans(m))
        merged: list[list[int]] = []
        for s, e in regions:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        out = bytearray()
        pos = start
        for s, e in merged:
            out += text[pos:s]
            out += MARKER_BYTES
            pos = e
        out += text[pos:stop]
        return bytes(out)


def _partial_start(pattern: regex.Pattern[bytes], text: bytes, start: int, end: int) -> int:
    """Where a match of pattern that the next bytes could complete begins (end if none)."""
    for m in pattern.finditer(text, start, end, partial=True):
        if m.partial and m.start() < end:
            start_at: int = m.start()
            return start_at
    return end
