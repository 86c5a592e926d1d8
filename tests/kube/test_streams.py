"""Stream codecs: each raw message decoded once, passed on as it came unless a stage changed it, and the
farewell kubegate sends when it ends a stream said in each protocol's own words."""

from __future__ import annotations

import base64

import orjson
import pytest

from kubegate.flow import Message
from kubegate.kube import channels
from kubegate.kube import portforward as pf
from kubegate.kube.streams import ChannelCodec, LegacyForwardCodec, TunnelCodec, requested_ports

V5 = channels.protocol(channels.V5)
BASE64 = channels.protocol(channels.BASE64)
assert V5 is not None and BASE64 is not None


def test_channel_messages_keep_their_bytes_unless_changed() -> None:
    codec = ChannelCodec(V5)
    message = codec.decode(b"\x01hello", from_client=False)
    assert (message.channel, message.data, message.close, message.from_client) == (1, b"hello", False, False)
    assert codec.encode(message) == b"\x01hello"
    assert codec.encode(message.replaced(b"hidden")) == b"\x01hidden"
    close = codec.decode(b"\xff\x00", from_client=True)
    assert close.close and close.channel == 0 and codec.encode(close) == b"\xff\x00"


def test_base64_messages_are_encoded_again_in_base64() -> None:
    codec = ChannelCodec(BASE64)
    message = codec.decode("1" + base64.b64encode(b"out").decode(), from_client=False)
    assert message.data == b"out"
    assert codec.encode(message.replaced(b"masked")) == "1" + base64.b64encode(b"masked").decode()


def test_the_farewell_of_exec_is_a_failure_status_on_the_error_channel() -> None:
    [farewell] = ChannelCodec(V5).farewell("your token expired")
    assert isinstance(farewell, bytes) and farewell[0] == channels.ERROR
    status = orjson.loads(farewell[1:])
    assert status["reason"] == "Unauthorized" and status["message"] == "your token expired"


def test_the_farewell_of_legacy_port_forward_goes_to_every_ports_error_channel() -> None:
    assert LegacyForwardCodec(V5, ports=2).farewell("bye") == [b"\x01bye", b"\x03bye"]
    assert requested_ports((("ports", "8080,9090"), ("ports", "x"), ("ports", "53"))) == [8080, 9090, 53]


def test_the_tunnel_is_decoded_into_frames_across_messages_and_passed_on_as_it_came() -> None:
    codec, w = TunnelCodec(), pf.Writer()
    wire = w.syn_stream(1, {"streamtype": "error", "port": "80", "requestid": "0"}) + w.data(1, b"")
    first = codec.decode(wire[:5], from_client=True)
    assert first.frames == () and codec.encode(first) == wire[:5]
    second = codec.decode(wire[5:], from_client=True)
    assert [f.type for f in second.frames] == [pf.SYN_STREAM, 0] and second.channel is None
    [farewell] = codec.farewell("token expired")
    [frame] = pf.Parser().feed(farewell)
    assert (frame.stream_id, frame.data, frame.fin) == (1, b"token expired", True)
    with pytest.raises(channels.ProtocolError):
        codec.encode(Message(False, None, b"changed"))
    with pytest.raises(pf.SpdyError):
        codec.decode("text", from_client=False)


def test_no_farewell_cuts_into_a_frame_half_sent_to_the_client() -> None:
    codec, w = TunnelCodec(), pf.Writer()
    codec.decode(w.syn_stream(1, {"streamtype": "error", "port": "80", "requestid": "0"}), from_client=True)
    codec.decode(w.data(3, b"partial")[:6], from_client=False)
    assert codec.farewell("bye") == []
