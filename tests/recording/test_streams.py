"""What a stream's recording keeps from the messages: asciicast with scrubbed stdin, resizes and the exit
code; port-forward connections with their ports and bytes, from channels or from the tunnel's frames."""

from __future__ import annotations

import orjson

from kubegate.flow import Message
from kubegate.kube import channels
from kubegate.kube import portforward as pf
from kubegate.masking.config import MaskingConfig
from kubegate.masking.marker import MARKER
from kubegate.masking.masker import Masker
from kubegate.recording.streams import CastRecord, LegacyForwardRecord, TunnelRecord

SECRET = "hunter2hunter2"


def test_exec_becomes_asciicast_with_stdin_scrubbed_and_the_exit_code() -> None:
    text = Masker(MaskingConfig()).plan(("credentials-in-text",)).text
    record = CastRecord(text.stream())
    record.add(Message(True, channels.STDIN, f"password={SECRET}".encode()))
    record.add(Message(True, channels.STDIN, b"\n"))
    record.add(Message(True, channels.RESIZE, b'{"Width":100,"Height":30}'))
    record.add(Message(False, channels.STDOUT, b"ok\n"))
    record.add(Message(True, channels.STDIN, close=True))
    record.add(Message(False, channels.ERROR, orjson.dumps(channels.exit_status(3, ["sh"]))))
    assert record.cast is not None
    events = record.cast.take(final=True)
    typed = "".join(t for _, c, t in events if c == "i")
    assert SECRET not in typed and MARKER in typed
    assert ["r", "100x30"] in [e[1:] for e in events] and ["o", "ok\n"] in [e[1:] for e in events]
    summary = record.summary()
    assert summary["exit_code"] == 3 and summary["bytes_in"] == len(SECRET) + 10 and summary["bytes_out"] == 3


def test_legacy_port_forward_reads_the_port_from_the_pods_first_message() -> None:
    record = LegacyForwardRecord([8080])
    record.add(Message(False, 0, pf.legacy_port_prefix(9090)))
    record.add(Message(False, 1, pf.legacy_port_prefix(9090)))
    record.add(Message(True, 0, b"ping"))
    record.add(Message(False, 0, b"PONG!"))
    record.add(Message(False, 1, b"refused"))
    record.finish()
    [conn] = record.forwarded
    assert (conn["port"], conn["bytes_to_pod"], conn["bytes_from_pod"], conn["error"]) == (9090, 4, 5, "refused")


def test_tunnelled_connections_are_recorded_from_the_decoded_frames() -> None:
    w, record = pf.Writer(), TunnelRecord()
    streams = ((1, "error"), (3, "data"))
    wire = b"".join(w.syn_stream(sid, {"streamtype": kind, "port": "80", "requestid": "7"}) for sid, kind in streams)
    opened = pf.Parser().feed(wire)  # one header-compression context per direction
    record.add(Message(True, None, b"", frames=tuple(opened)))
    data = pf.Frame(0, pf.FLAG_FIN, 3, data=b"GET /")
    record.add(Message(True, None, b"", frames=(data,)))
    record.add(Message(False, None, b"", frames=(pf.Frame(0, pf.FLAG_FIN, 3, data=b"200 OK"),)))
    [conn] = record.forwarded
    assert (conn["port"], conn["bytes_to_pod"], conn["bytes_from_pod"]) == (80, 5, 6)
    assert record.summary()["connections"] == 1
