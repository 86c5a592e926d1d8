"""The exec/attach channel protocol: binary and base64 framing, v5 CLOSE, and the error-channel Status."""

from __future__ import annotations

import orjson
import pytest

from kubegate.kube import channels
from kubegate.kube.channels import Frame, ProtocolError, decode, encode, protocol


def test_binary_frames_round_trip() -> None:
    v5 = protocol(channels.V5)
    assert v5 is not None
    assert encode(v5, Frame(channels.STDOUT, b"hello")) == b"\x01hello"
    assert decode(v5, b"\x00abc") == Frame(channels.STDIN, b"abc")
    assert decode(v5, b"\x02") == Frame(channels.STDERR, b"")


def test_v5_close_is_a_half_close_and_older_protocols_have_none() -> None:
    v5, v4 = protocol(channels.V5), protocol(channels.V4)
    assert v5 is not None and v4 is not None
    assert decode(v5, b"\xff\x00") == Frame(channels.STDIN, close=True)
    assert encode(v5, Frame(channels.STDIN, close=True)) == b"\xff\x00"
    assert decode(v4, b"\xff\x00") == Frame(255, b"\x00")
    with pytest.raises(ProtocolError):
        encode(v4, Frame(channels.STDIN, close=True))
    with pytest.raises(ProtocolError):
        decode(v5, b"\xff\x00\x01")


def test_base64_frames_carry_the_channel_as_a_digit() -> None:
    b64 = protocol(channels.BASE64)
    assert b64 is not None and b64.base64
    assert encode(b64, Frame(channels.STDIN, b"foo\n")) == "0Zm9vCg=="
    assert decode(b64, "1Cg==") == Frame(channels.STDOUT, b"\n")
    with pytest.raises(ProtocolError):
        decode(b64, "x")
    with pytest.raises(ProtocolError):
        decode(b64, "1!!")


def test_binary_protocols_refuse_text_and_empty_messages() -> None:
    v4 = protocol(channels.V4)
    assert v4 is not None
    with pytest.raises(ProtocolError):
        decode(v4, "1abc")
    with pytest.raises(ProtocolError):
        decode(v4, b"")


def test_unknown_subprotocols_are_not_channel_protocols() -> None:
    assert protocol("v6.channel.k8s.io") is None
    assert protocol("SPDY/3.1+portforward.k8s.io") is None


def test_exit_code_from_the_error_channel() -> None:
    assert channels.exit_code(orjson.dumps(channels.success_status())) == 0
    assert channels.exit_code(orjson.dumps(channels.exit_status(3, ["sh", "-c", "exit 3"]))) == 3
    assert channels.exit_code(orjson.dumps(channels.failure_status("boom"))) is None
    assert channels.exit_code(b"not json") is None
    assert "exit code 3" in channels.status_message(orjson.dumps(channels.exit_status(3, ["x"])))


def test_resize_messages() -> None:
    assert channels.resize(b'{"Width":120,"Height":40}') == (120, 40)
    assert channels.resize(b"{}") is None
    assert channels.resize(b"garbage") is None
