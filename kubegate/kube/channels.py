"""The channel protocol that exec, attach and legacy port-forward speak over a WebSocket.

As k8s.io/apimachinery's wsstream and kubelet's remotecommand define it: every message carries one
channel. Binary protocols (`channel.k8s.io`, `v4.channel.k8s.io`, `v5.channel.k8s.io`) put the channel
number in the first byte; base64 protocols (`base64.channel.k8s.io`, `v4.base64...`) send text whose
first character is the channel digit and whose rest is base64. For exec and attach the channels are
stdin 0, stdout 1, stderr 2, error 3 (a JSON metav1.Status, with the exit code of a failed command)
and resize 4 (JSON `{"Width":..,"Height":..}`). v5 adds CLOSE: the two bytes `[255, channel]`
half-close one channel, which is how a client says stdin ended.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
BASE64 = "base64.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V5_BASE64 = "v5.base64.channel.k8s.io"


class ProtocolError(ValueError):
    """A message that does not follow the negotiated channel protocol."""


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    version: int
    base64: bool

    @property
    def supports_close(self) -> bool:
        return self.version >= 5 and not self.base64


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(V5, 5, False),
        Protocol(V4, 4, False),
        Protocol(V3, 3, False),
        Protocol(V2, 2, False),
        Protocol(V1, 1, False),
        Protocol(BASE64, 1, True),
        Protocol(V4_BASE64, 4, True),
        Protocol(V5_BASE64, 5, True),
    )
}


def protocol(name: str) -> Protocol | None:
    """The channel protocol a negotiated WebSocket subprotocol names, or None for any other."""
    return PROTOCOLS.get(name)


@dataclass(frozen=True, slots=True)
class Frame:
    """One message: `data` on `channel`, or (close=True) the v5 half-close of `channel`."""

    channel: int
    data: bytes = b""
    close: bool = False


def decode(proto: Protocol, message: bytes | str) -> Frame:
    if proto.base64:
        text = message if isinstance(message, str) else message.decode("ascii", errors="strict")
        if not text or not text[0].isdigit():
            raise ProtocolError("a base64 channel message must start with the channel digit")
        try:
            return Frame(int(text[0]), base64.b64decode(text[1:], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"invalid base64 on channel {text[0]}: {exc}") from exc
    if isinstance(message, str):
        raise ProtocolError(f"{proto.name} carries binary messages only")
    if not message:
        raise ProtocolError("an empty message carries no channel")
    if message[0] == CLOSE and proto.supports_close:
        if len(message) != 2:
            raise ProtocolError("a CLOSE message is exactly [255, channel]")
        return Frame(message[1], close=True)
    return Frame(message[0], message[1:])


def encode(proto: Protocol, frame: Frame) -> bytes | str:
    if frame.close:
        if not proto.supports_close:
            raise ProtocolError(f"{proto.name} has no CLOSE message")
        return bytes((CLOSE, frame.channel))
    if proto.base64:
        return str(frame.channel) + base64.b64encode(frame.data).decode("ascii")
    return bytes((frame.channel,)) + frame.data


def resize(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a resize message, or None when it is not one."""
    try:
        doc = orjson.loads(data)
        width, height = int(doc["Width"]), int(doc["Height"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return (width, height) if width >= 0 and height >= 0 else None


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, command: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The error-channel Status kubelet writes for a command that exited non-zero."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {list(command)}, "
        f"exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure_status(message: str, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def exit_code(status: bytes) -> int | None:
    """The remote command's exit code from an error-channel Status: 0 for Success, the ExitCode cause
    for NonZeroExitCode, None for anything else (a failure that is not the command's own)."""
    try:
        doc = orjson.loads(status)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("status") == "Success":
        return 0
    if doc.get("reason") != "NonZeroExitCode":
        return None
    for cause in (doc.get("details") or {}).get("causes") or []:
        if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", ""))
            except ValueError:
                return None
    return None


def status_message(status: bytes) -> str:
    try:
        doc = orjson.loads(status)
    except orjson.JSONDecodeError:
        return status.decode(errors="replace")
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""
