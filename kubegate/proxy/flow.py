"""A Flow is one request through kubegate, and a Stage is one concern acting on it.

Like mitmproxy's addons, each stage implements only the hooks it needs; like kube-apiserver's
handler chain, stages run in one fixed order: `on_request` first to last, the response hooks last
to first. Any stage refuses a request by raising `kubegate.kube.status.Refused`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

if TYPE_CHECKING:
    from aiohttp import web

    from kubegate.identity.model import Identity
    from kubegate.kube.requestinfo import RequestInfo
    from kubegate.upstream.connection import Connection


@dataclass(eq=False)
class Flow:
    """Everything known about one request as it travels the pipeline.

    `is_stream` marks responses that never end on their own (watch, logs -f): stages must pass
    their chunks on as they come. `sent` is the request body decoded as sent (JSON or YAML); `stored`
    the object a write would store, when policy asked the cluster (a dry run). `headers` are the
    headers that will be sent upstream: already stripped of hop-by-hop, Authorization and
    Impersonate-* headers. `decision` is set by the policy stage; `warnings` go to the caller as
    `Warning` headers (set before the first byte); `extras` is where a stage keeps what only it and
    later stages need.
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
    info: RequestInfo | None = None
    decision: Any = None
    is_upgrade: bool = False
    is_stream: bool = False
    rewrites_body: bool = False
    response_status: int = 0
    response_headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    refusal: Any = None
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

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

    async def on_end(self, flow: Flow) -> None:
        return None

    async def close(self) -> None:
        return None
