"""A minimal protobuf writer for tests: varints and fields, enough to build Kubernetes protobuf bodies."""

from __future__ import annotations


def varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def field(number: int, payload: bytes | int) -> bytes:
    """A varint field for an int, a length-delimited one for bytes (strings, messages)."""
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def envelope(api_version: bytes, kind: bytes, *raws: bytes) -> bytes:
    """A Kubernetes protobuf body: `k8s\\x00` and a runtime.Unknown (typeMeta 1, raw 2, given once or more)."""
    return b"k8s\x00" + field(1, field(1, api_version) + field(2, kind)) + b"".join(field(2, raw) for raw in raws)
