"""Refusals of unidentified callers are counted per client and window, within fixed bounds."""

from __future__ import annotations

from kubegate.recording.anonymous import MAX_SAMPLES, MAX_TEXT, OVERFLOW, AnonymousRefusals
from kubegate.recording.replay import summarize


def test_the_first_refusal_of_a_window_opens_it_and_the_rest_are_counted() -> None:
    tally = AnonymousRefusals(window_seconds=60)
    assert tally.add("10.0.0.1", "GET /x: no token", 0.0) is not None
    assert all(tally.add("10.0.0.1", "GET /x: no token", t) is None for t in (1.0, 2.0, 3.0))
    assert tally.closed(30.0) == []
    [done] = tally.closed(61.0)
    assert (done.client, done.count, done.samples, done.started, done.last) == (
        "10.0.0.1",
        3,
        {"GET /x: no token": 3},
        0.0,
        3.0,
    )
    assert tally.add("10.0.0.1", "GET /x: no token", 62.0) is not None  # a new window opens


def test_a_window_without_further_refusals_closes_silently() -> None:
    tally = AnonymousRefusals(window_seconds=60)
    tally.add("10.0.0.1", "GET /x: no token", 0.0)
    assert tally.closed(61.0) == [] and len(tally) == 0


def test_clients_beyond_the_bound_are_counted_together() -> None:
    tally = AnonymousRefusals(window_seconds=60, max_clients=3)
    opened = [tally.add(f"10.0.0.{i}", "GET /: no token", 0.0) for i in range(100)]
    assert len(tally) == 4 and sum(w is not None for w in opened) == 4
    [overflow] = [w for w in tally.drain() if w.client == OVERFLOW]
    assert overflow.count == 96


def test_samples_are_few_and_short() -> None:
    tally = AnonymousRefusals()
    tally.add("c", "first", 0.0)
    for i in range(50):
        tally.add("c", f"GET /{i}/" + "x" * 7000 + ": no token", 1.0)
    [window] = tally.drain()
    assert len(window.samples) == MAX_SAMPLES and window.others == 50 - MAX_SAMPLES
    assert all(len(what) <= 2 * MAX_TEXT + 1 for what in window.samples)
    line = summarize({"type": "refusals", "data": window.summary()})
    assert line.startswith("50 more refusals of client c counted, not recorded: GET /0/xxx") and "45 others" in line
