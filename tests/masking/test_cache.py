"""A watch event fanned out to many watchers is masked once; the cache never serves a line masked
under other profiles or for another kind, and stays within its byte budget."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from kubegate.masking.cache import MaskedLines
from kubegate.masking.marker import MARKER_B64
from kubegate.masking.stage import MaskingStage
from tests.masking.builders import b64, event, exchange, flow, masker, secret


def counting() -> tuple[list[bytes], Callable[[bytes], tuple[bytes, int]]]:
    calls: list[bytes] = []

    def mask(line: bytes) -> tuple[bytes, int]:
        calls.append(line)
        return line.upper(), len(calls)

    return calls, mask


def test_a_line_is_masked_once_per_context() -> None:
    cache, (calls, mask) = MaskedLines(), counting()
    assert cache.get("a", b"x\n", mask) == (b"X\n", 1)
    assert cache.get("a", b"x\n", mask) == (b"X\n", 1)  # with the count masking it once gave
    assert cache.get("b", b"x\n", mask) == (b"X\n", 2)
    assert calls == [b"x\n", b"x\n"] and cache.hits == 1


def test_the_byte_budget_evicts_the_least_recently_used() -> None:
    cache, (calls, mask) = MaskedLines(max_bytes=40, max_line=100), counting()
    for line in (b"a" * 10, b"b" * 10, b"a" * 10, b"c" * 10):  # a is used again before c arrives: b goes
        cache.get("ctx", line, mask)
    cache.get("ctx", b"a" * 10, mask)
    cache.get("ctx", b"b" * 10, mask)
    assert calls == [b"a" * 10, b"b" * 10, b"c" * 10, b"b" * 10]


def test_long_lines_are_not_kept() -> None:
    cache, (calls, mask) = MaskedLines(max_line=8), counting()
    cache.get("ctx", b"y" * 9, mask)
    cache.get("ctx", b"y" * 9, mask)
    assert len(calls) == 2 and cache.hits == 0


async def test_watchers_of_the_same_event_share_one_masking() -> None:
    stage = MaskingStage(masker())
    line = event("MODIFIED", secret("db", {"password": "hunter2"}))
    watchers = [flow("GET", "/api/v1/namespaces/default/secrets", "watch=true") for _ in range(3)]
    outs = [b"".join(await exchange(stage, watcher, [line])) for watcher in watchers]
    assert outs[0] == outs[1] == outs[2] and stage.watch_events.hits == 2
    assert [w.masked.values if w.masked else 0 for w in watchers] == [
        1,
        1,
        1,
    ]  # each watcher was shown one masked value
    assert orjson.loads(outs[0])["object"]["data"]["password"] == MARKER_B64
    unmasked = flow("GET", "/api/v1/namespaces/default/secrets", "watch=true", masks=("env-credentials",))
    other = b"".join(await exchange(stage, unmasked, [line]))
    assert orjson.loads(other)["object"]["data"]["password"] == b64("hunter2")  # not the cached masked line
    assert stage.watch_events.hits == 2
