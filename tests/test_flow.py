"""The Flow's own small contracts: a stage's kept state is its own, and a changed message is encoded anew."""

from __future__ import annotations

from kubegate.flow import FlowKey, Message
from tests.flows import bare_flow


def test_each_key_keeps_its_own_value_until_dropped() -> None:
    flow, first, second = bare_flow(), FlowKey[int]("same-name"), FlowKey[int]("same-name")
    flow.keep(first, 1)
    assert flow.kept(first) == 1 and flow.kept(second) is None, "keys are told apart by identity, not by name"
    assert flow.drop(first) == 1 and flow.kept(first) is None and flow.drop(first) is None


def test_a_replaced_message_keeps_its_place_but_not_its_raw_bytes() -> None:
    message = Message(False, 1, b"password=x", close=False, raw=b"\x01password=x")
    changed = message.replaced(b"password=\xe2\x96\x88")
    assert (changed.from_client, changed.channel, changed.data, changed.raw) == (
        False,
        1,
        b"password=\xe2\x96\x88",
        None,
    )
