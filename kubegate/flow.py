"""A Flow is one request through kubegate, and a Stage is one concern acting on it.

Like mitmproxy's addons, each stage implements only the hooks it needs; like kube-apiserver's
handler chain, stages run in one fixed order: `on_request` first to last, the response hooks last
to first. Upgraded streams (exec, attach, port-forward) travel the same stages: each decoded
`Message` from the client goes first to last, each from the cluster last to first, like the
request and the response. Any stage refuses a request, or stops a stream, by raising
`kubegate.kube.status.Refused`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from multidict import CIMultiDict

if TYPE_CHECKING:
    from aiohttp import web

    from kubegate.approvals.model import Grant
    from kubegate.identity.model import Identity
    from kubegate.kube.portforward import Frame as SpdyFrame
    from kubegate.kube.requestinfo import RequestInfo
    from kubegate.kube.status import Refused
    from kubegate.policy.decision import Decision
    from kubegate.upstream.connection import Connection


T = TypeVar("T")


class FlowKey(Generic[T]):
    """A typed place on a Flow for what one stage keeps between its own hooks (as aiohttp's AppKey types an
    application's state). What other stages need to know is a typed Flow field instead."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"FlowKey({self.name!r})"


@dataclass(slots=True)
class MaskReport:
    """What the masking stage did to one response or stream, for the stages after it (metrics): the
    profiles that applied and how many values they hid."""

    profiles: tuple[str, ...]
    values: int = 0


@dataclass(slots=True)
class Upgrade:
    """An upgraded stream: what the upgrade gate admitted, the subprotocol the cluster chose, whether a
    recording holds it (set by the recorder before forwarding: the bridge dials no stream without
    one), and which side ended it."""

    subresource: str
    offered: tuple[str, ...]
    protocol: str = ""
    recorded: bool = False
    ended_by: str = ""


@dataclass(slots=True)
class Message:
    """One message of an upgraded stream, decoded once by the bridge.

    `channel` is the remote-command or legacy port-forward channel (stdin 0, stdout 1, stderr 2,
    error 3, resize 4; port i's data 2i and errors 2i+1), with `close` for a v5 half-close; it is None
    in the port-forward tunnel, whose SPDY `frames` this message completed (decoded once, for
    everyone). `raw` is the message as it arrived: a stage that changes `data` returns a new Message
    without it, and the bridge encodes that one instead.
    """

    from_client: bool
    channel: int | None
    data: bytes = b""
    close: bool = False
    frames: tuple[SpdyFrame, ...] = ()
    raw: bytes | str | None = None

    def replaced(self, data: bytes) -> Message:
        """The same message carrying other data: encoded anew by the bridge."""
        return Message(self.from_client, self.channel, data, self.close)


@dataclass(eq=False)
class Flow:
    """Everything known about one request as it travels the pipeline.

    `is_stream` marks responses that never end on their own (watch, logs -f): stages must pass
    their chunks on as they come. `sent` is the request body decoded as sent (JSON or YAML); `stored`
    the object a write would store, when policy asked the cluster (a dry run). `session_id` is the
    recorded session, decided once right after authentication (empty for a caller nobody identified). `headers` are the
    headers that will be sent upstream: already stripped of hop-by-hop, Authorization and
    Impersonate-* headers. `decision` is set by the policy stage; `warnings` go to the caller as
    `Warning` headers (set before the first byte); `upgrade` describes an admitted upgraded stream;
    `retry_of` names the refused attempt this one repeats (kubectl's SPDY retry); `grant` is the
    approval that let it through; `masked` says what masking hid; `bytes_sent` counts the response body
    the caller got. What a stage keeps only for itself it keeps under a `FlowKey`.
    """

    request: web.Request
    connection: Connection
    method: str
    raw_path: str
    query_string: str
    headers: CIMultiDict[str]
    body: bytes = b""
    sent: Any = None
    stored: Any = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.monotonic)
    identity: Identity | None = None
    session_id: str = ""
    info: RequestInfo | None = None
    decision: Decision | None = None
    is_upgrade: bool = False
    upgrade: Upgrade | None = None
    retry_of: str = ""
    is_stream: bool = False
    rewrites_body: bool = False
    response_status: int = 0
    response_headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    refusal: Refused | None = None
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    grant: Grant | None = None
    masked: MaskReport | None = None
    bytes_sent: int = 0
    _kept: dict[FlowKey[Any], Any] = field(default_factory=dict, repr=False)

    def keep(self, key: FlowKey[T], value: T) -> None:
        self._kept[key] = value

    def kept(self, key: FlowKey[T]) -> T | None:
        return cast("T | None", self._kept.get(key))

    def drop(self, key: FlowKey[T]) -> T | None:
        return cast("T | None", self._kept.pop(key, None))

    @property
    def object(self) -> Any:
        """What policy judges: the object the write would store if known, else the body as sent."""
        return self.stored if self.stored is not None else self.sent

    @property
    def kubectl_session(self) -> str:
        return self.request.headers.get("Kubectl-Session", "")

    @property
    def kubectl_command(self) -> str:
        return self.request.headers.get("Kubectl-Command", "")


class Stage:
    """One concern in the pipeline. Override only the hooks you need; the pipeline skips the rest.

    - `on_request(flow)`: before forwarding, in pipeline order; raise Refused to stop.
    - `on_response(flow)`: upstream status and headers are known, body not yet sent; reverse order.
      A stage may still raise Refused here (for example a body it cannot mask) and nothing is sent.
    - `on_chunk(flow, data) -> bytes`: each piece of response body on its way out; reverse order.
      A stage that changes the body sets `flow.rewrites_body` in on_response (Content-Length is then
      dropped) and may hold data back, returning it later or from `on_eof`.
    - `on_eof(flow) -> bytes`: the upstream body ended; return what the stage still holds.
    - `on_message(flow, message) -> list[Message]`: each message of an upgraded stream, once the cluster
      answered 101 (on_response saw that): from the client first to last, from the cluster last to first.
      Return it, changed messages, several, or none (held back for later).
    - `on_stream_end(flow) -> list[Message]`: the stream is ending (either side left, or the caller's
      token expired); return what the stage still holds. They pass the stages after it in their direction.
    - `on_end(flow)`: the exchange is over (flow.error or flow.refusal say how); reverse order.
    - `close()`: the gateway is shutting down.
    """

    name = "stage"

    async def on_request(self, flow: Flow) -> None:
        return None

    async def on_response(self, flow: Flow) -> None:
        return None

    async def on_chunk(self, flow: Flow, data: bytes) -> bytes:
        return data

    async def on_eof(self, flow: Flow) -> bytes:
        return b""

    async def on_message(self, flow: Flow, message: Message) -> list[Message]:
        return [message]

    async def on_stream_end(self, flow: Flow) -> list[Message]:
        return []

    async def on_end(self, flow: Flow) -> None:
        return None

    async def close(self) -> None:
        return None
