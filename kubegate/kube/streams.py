"""The codecs of upgraded streams: raw WebSocket messages to typed `Message`s and back, one per protocol.

The bridge decodes every message once with the codec of the negotiated subprotocol and hands the
`Message` to the stages; a stage that changes one returns a new Message, which the codec encodes. A
codec also says how kubegate tells the client it ended a stream itself (the caller's token expired, a
recording failed), in the words that client's protocol has for it.
"""

from __future__ import annotations

import orjson

from kubegate.flow import Message
from kubegate.kube import channels
from kubegate.kube import portforward as pf


def requested_ports(query: tuple[tuple[str, str], ...]) -> list[int]:
    """The ports a port-forward asks for, in order (`ports=8080,9090`, or repeated)."""
    return [int(p) for k, v in query if k == "ports" for p in v.split(",") if p.strip().isdigit()]


class StreamCodec:
    """Messages of a channel protocol (remote command, legacy port-forward), or the port-forward tunnel."""

    def decode(self, raw: bytes | str, from_client: bool) -> Message:
        raise NotImplementedError

    def encode(self, message: Message) -> bytes | str:
        if message.raw is None:
            raise channels.ProtocolError("this stream's messages cannot be changed")
        return message.raw

    def farewell(self, text: str) -> list[bytes | str]:
        """Messages telling the client why kubegate ended the stream."""
        return []


class ChannelCodec(StreamCodec):
    """exec and attach: one channel per message (v4, v5 with half-close, base64 variants)."""

    def __init__(self, proto: channels.Protocol) -> None:
        self.proto = proto

    def decode(self, raw: bytes | str, from_client: bool) -> Message:
        frame = channels.decode(self.proto, raw)
        return Message(from_client, frame.channel, frame.data, frame.close, raw=raw)

    def encode(self, message: Message) -> bytes | str:
        if message.raw is not None:
            return message.raw
        assert message.channel is not None
        return channels.encode(self.proto, channels.Frame(message.channel, message.data, message.close))

    def farewell(self, text: str) -> list[bytes | str]:
        status = channels.failure_status(text, reason="Unauthorized", code=401)
        return [self.encode(Message(False, channels.ERROR, orjson.dumps(status)))]


class LegacyForwardCodec(ChannelCodec):
    """Port-forward over channels: port i's data on channel 2i, its errors on 2i+1."""

    def __init__(self, proto: channels.Protocol, ports: int) -> None:
        super().__init__(proto)
        self.ports = ports

    def farewell(self, text: str) -> list[bytes | str]:
        return [self.encode(Message(False, 2 * i + 1, text.encode())) for i in range(self.ports)]


class TunnelCodec(StreamCodec):
    """Port-forward through the SPDY/3.1 tunnel: each direction's bytes parsed into frames as they come
    (a frame may span messages), passed on as they arrived."""

    def __init__(self) -> None:
        self._parsers = {True: pf.Parser(), False: pf.Parser()}
        self._streams = pf.TunnelObserver()  # which error streams are open, for the farewell (times unused)

    def decode(self, raw: bytes | str, from_client: bool) -> Message:
        if isinstance(raw, str):
            raise pf.SpdyError("the SPDY tunnel carries binary messages only")
        frames = self._parsers[from_client].feed(raw)
        if from_client:
            self._streams.from_client(frames, 0.0)
        else:
            self._streams.from_pod(frames, 0.0)
        return Message(from_client, None, raw, frames=tuple(frames), raw=raw)

    def farewell(self, text: str) -> list[bytes | str]:
        if not self._parsers[False].at_boundary:  # a frame to the client is half sent: nothing fits in
            return []
        return [pf.Writer.data(sid, text.encode(), fin=True) for sid in self._streams.open_error_streams()]
