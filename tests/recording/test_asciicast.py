"""asciicast v2 from exec streams: events as they are recorded, the file asciinema plays, and replay timing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from kubegate.recording import asciicast
from kubegate.recording.asciicast import Cast, CastBuilder, cast_from_events, play


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_builder_times_events_from_the_start_and_keeps_characters_whole() -> None:
    clock = Clock()
    cast = CastBuilder(clock)
    clock.now = 100.5
    cast.write("o", "é".encode()[:1], stream="1")
    cast.write("o", "é".encode()[1:] + b"!", stream="1")
    clock.now = 101.0
    cast.write("i", b"ls\r")
    cast.resize(120, 40)
    cast.write("o", b"\xff\x00tar", stream="2")
    assert cast.take(final=True) == [
        [0.5, "o", "é!"],
        [1.0, "i", "ls\r"],
        [1.0, "r", "120x40"],
        [1.0, "o", "\\xff\x00tar"],
    ]
    assert cast.take() == []


def test_builder_batches_by_size_and_age() -> None:
    clock = Clock()
    cast = CastBuilder(clock)
    cast.write("o", b"x")
    assert not cast.ready()
    clock.now += asciicast.BATCH_SECONDS
    assert cast.ready()
    cast.take()
    cast.write("o", b"y" * asciicast.BATCH_BYTES)
    assert cast.ready()


def _events() -> list[dict[str, object]]:
    return [
        {"type": "request", "time": "2026-01-01T00:00:00Z", "data": {"flow": "a"}},
        {
            "type": "stream",
            "time": "2026-01-01T00:00:01Z",
            "data": {"flow": "a", "kind": "exec", "namespace": "ns", "pod": "web", "command": ["sh"]},
        },
        {
            "type": "cast",
            "time": "2026-01-01T00:00:02Z",
            "data": {"flow": "a", "events": [[0.1, "r", "100x30"], [0.2, "o", "$ "], [1.5, "i", "ls\r"]]},
        },
        {
            "type": "stream",
            "time": "2026-01-01T00:00:11Z",
            "data": {"flow": "b", "kind": "attach", "namespace": "ns", "pod": "web", "command": []},
        },
        {"type": "cast", "time": "2026-01-01T00:00:12Z", "data": {"flow": "b", "events": [[0.5, "o", "later"]]}},
        {"type": "stream", "time": "2026-01-01T00:00:12Z", "data": {"flow": "c", "kind": "portforward"}},
    ]


def test_a_session_becomes_one_cast_on_one_timeline() -> None:
    cast = cast_from_events({"username": "sandbox:alice"}, _events())
    assert cast is not None
    assert cast.header["version"] == 2 and (cast.header["width"], cast.header["height"]) == (100, 30)
    assert cast.header["title"] == "exec ns/web: sh (sandbox:alice)"
    assert cast.events == [[0.1, "r", "100x30"], [0.2, "o", "$ "], [1.5, "i", "ls\r"], [10.5, "o", "later"]]
    assert cast_from_events({}, _events()[:1]) is None


def test_the_file_is_asciicast_v2(tmp_path: Path) -> None:
    cast = cast_from_events({}, _events())
    assert cast is not None
    lines = cast.dumps().splitlines()
    assert json.loads(lines[0])["version"] == 2 and json.loads(lines[2]) == [0.2, "o", "$ "]
    path = tmp_path / "s.cast"
    path.write_text(cast.dumps())
    asciinema = shutil.which("asciinema", path=str(Path(sys.executable).parent)) or "asciinema"
    out = subprocess.run([asciinema, "cat", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "$ later", out.stderr


def test_play_keeps_the_pauses_scaled_and_capped() -> None:
    cast = Cast({"version": 2}, [[1.0, "o", "a"], [1.0, "i", "x"], [5.0, "o", "b"], [5.5, "r", "1x1"], [6.0, "o", "c"]])
    written: list[str] = []
    pauses: list[float] = []
    play(cast, written.append, pauses.append, speed=2.0, idle_limit=1.5)
    assert written == ["a", "b", "c"] and pauses == [0.5, 1.5, 0.5]
