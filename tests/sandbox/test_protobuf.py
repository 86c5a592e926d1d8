"""The sandbox decodes protobuf request bodies to the JSON they stand for; fields outside its table are skipped."""

from __future__ import annotations

import pytest

from kubegate.sandbox.cluster import protobuf
from tests.protowire import envelope, field


def test_protobuf_bodies_decode_to_json_objects() -> None:
    meta = field(1, b"cfg") + field(11, field(1, b"app") + field(2, b"web"))
    obj = field(1, meta) + field(2, field(1, b"k") + field(2, b"v")) + field(4, 0)
    body = envelope(b"v1", b"ConfigMap", obj)
    expected = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "immutable": False,
        "metadata": {"name": "cfg", "labels": {"app": "web"}},
        "data": {"k": "v"},
    }
    assert protobuf.decode_body(body) == expected


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(protobuf.UnknownKind):
        protobuf.decode_body(protobuf.MAGIC + field(1, field(1, b"batch/v1") + field(2, b"Job")))


def test_fields_outside_the_table_are_skipped() -> None:
    obj = field(1, field(1, b"cfg")) + field(99, b"hidden")
    body = envelope(b"v1", b"ConfigMap", obj)
    assert protobuf.decode_body(body) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}


def test_truncated_and_foreign_bodies_are_errors() -> None:
    with pytest.raises(protobuf.ProtobufError, match="magic"):
        protobuf.decode_body(b'{"kind":"ConfigMap"}')
    with pytest.raises(protobuf.ProtobufError, match="truncated"):
        protobuf.decode_body(protobuf.MAGIC + b"\x0a\xff")
