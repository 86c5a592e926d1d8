"""The sandbox decodes protobuf request bodies to the JSON they stand for; fields outside its table are skipped."""

from __future__ import annotations

import pytest

from kubegate.sandbox.cluster import protobuf


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: bytes, kind: bytes, obj: bytes) -> bytes:
    return protobuf.MAGIC + _field(1, _field(1, api_version) + _field(2, kind)) + _field(2, obj)


def test_protobuf_bodies_decode_to_json_objects() -> None:
    meta = _field(1, b"cfg") + _field(11, _field(1, b"app") + _field(2, b"web"))
    obj = _field(1, meta) + _field(2, _field(1, b"k") + _field(2, b"v")) + _field(4, 0)
    body = _envelope(b"v1", b"ConfigMap", obj)
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
        protobuf.decode_body(protobuf.MAGIC + _field(1, _field(1, b"batch/v1") + _field(2, b"Job")))


def test_fields_outside_the_table_are_skipped() -> None:
    obj = _field(1, _field(1, b"cfg")) + _field(99, b"hidden")
    body = _envelope(b"v1", b"ConfigMap", obj)
    assert protobuf.decode_body(body) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}


def test_truncated_and_foreign_bodies_are_errors() -> None:
    with pytest.raises(protobuf.ProtobufError, match="magic"):
        protobuf.decode_body(b'{"kind":"ConfigMap"}')
    with pytest.raises(protobuf.ProtobufError, match="truncated"):
        protobuf.decode_body(protobuf.MAGIC + b"\x0a\xff")
