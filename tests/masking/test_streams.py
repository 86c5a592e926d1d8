"""exec and attach output masking, message by message: a value split across messages is still hidden,
what is held comes out before the exit status or at the end, and stdin passes as typed."""

from __future__ import annotations

from kubegate.flow import Message
from kubegate.kube import channels
from kubegate.masking.config import MaskingConfig
from kubegate.masking.marker import MARKER
from kubegate.masking.masker import Masker
from kubegate.masking.streams import OutputMasks

SECRET = "hunter2hunter2"


def _masks() -> OutputMasks:
    text = Masker(MaskingConfig()).plan(("credentials-in-text",)).text
    return OutputMasks(text)


def _out(messages: list[Message]) -> bytes:
    return b"".join(m.data for m in messages if m.channel == channels.STDOUT)


def test_a_value_split_across_messages_is_hidden_and_the_rest_flows() -> None:
    masks = _masks()
    sent = masks.message(Message(False, channels.STDOUT, b"pass", raw=b"\x01pass"))
    sent += masks.message(Message(False, channels.STDOUT, f"word={SECRET}\nok\n".encode()))
    sent += masks.flush()
    assert _out(sent) == f"password={MARKER}\nok\n".encode()
    assert all(m.raw is None for m in sent), "changed messages are encoded anew"


def test_held_output_goes_out_before_the_exit_status() -> None:
    masks = _masks()
    held = masks.message(Message(False, channels.STDERR, b"password=" + SECRET.encode()))
    status = Message(False, channels.ERROR, b'{"status":"Success"}')
    out = masks.message(status)
    assert out[-1] is status and SECRET.encode() not in b"".join(m.data for m in held + out)
    assert MARKER.encode() in b"".join(m.data for m in out[:-1])


def test_stdin_and_the_open_message_pass_untouched() -> None:
    masks = _masks()
    typed = Message(True, channels.STDIN, f"password={SECRET}\n".encode(), raw=b"x")
    assert masks.message(typed) == [typed]
    opened = Message(False, channels.STDOUT, b"", raw=b"\x01")
    assert masks.message(opened) == [opened]
