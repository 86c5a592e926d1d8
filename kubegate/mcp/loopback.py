"""Each MCP tool call becomes an HTTPS request to kubegate's own `/k8s/<connection>` endpoint.

Why a loopback request and not an in-process call into the Pipeline: the pipeline answers an aiohttp
request (it streams its response into that request's transport, reads its headers, sees its disconnect),
so a real request is the only one it handles with nothing special-cased. The request carries the caller's
own bearer token, so the same verifier authenticates it, the same identity is impersonated, policy,
approvals (fingerprint, grants used once), masking, temporary RBAC and recording see an ordinary request,
and a retry after approval is byte-identical to the first call. `Kubectl-Session` is the MCP session id,
so one MCP session is one recorded session. The target is the socket this process bound, and TLS trusts
exactly kubegate's serving certificate (pinned; no host name check), so the token never leaves the process'
own listener. What differs from kubectl: the recorded source address is the loopback one.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson

from kubegate import __version__

K8S_PREFIX = "/k8s/"  # kubegate.app's route; not imported, since the app imports this package


@dataclass(frozen=True)
class Caller:
    """Who a tool call is for: the token to forward (never stored or logged) and the MCP session."""

    token: str = field(repr=False)
    session_id: str
    client: str = ""
    command: str = ""
    """The tool call, sent as Kubectl-Command: the recorded session names what the agent asked."""

    @property
    def kubectl_session(self) -> str:
        """Sent as Kubectl-Session, so one MCP session is one recorded session; sessionless revisions send
        none and get the identity's idle window, like curl."""
        return f"mcp-{self.session_id}" if self.session_id else ""

    @property
    def user_agent(self) -> str:
        return f"kubegate-mcp/{__version__} ({self.client or 'MCP client'})"

    def headers(self) -> dict[str, str]:
        """What every loopback request carries besides its own headers."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Kubectl-Command": self.command,
            "User-Agent": self.user_agent,
        }
        if self.kubectl_session:
            headers["Kubectl-Session"] = self.kubectl_session
        return headers


@dataclass
class Answer:
    status: int
    body: Any
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def warning_text(header: str) -> str:
    """What kubectl prints for a `Warning: 299 - "text"` header: the text."""
    code, _, rest = header.partition(" ")
    quoted = rest.partition(" ")[2]
    if not code.isdigit() or not quoted.startswith('"') or not quoted.endswith('"'):
        return header
    return quoted[1:-1].replace('\\"', '"').replace("\\\\", "\\")


@dataclass
class Exec:
    output: dict[int, bytes] = field(default_factory=lambda: {1: b"", 2: b""})
    status: dict[str, Any] | None = None
    refused: int = 0
    timed_out: bool = False


EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def pinned_context(cert: Path) -> ssl.SSLContext:
    """Trust only the serving certificate itself: the loopback peer is this process' own listener."""
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


class Loopback:
    def __init__(self, url: str, cert: Path) -> None:
        self.url = url.rstrip("/")
        self._ssl = pinned_context(cert)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def request(
        self,
        caller: Caller,
        connection: str,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: bytes | None = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Answer:
        """One Kubernetes API request (path below the connection) as the caller, answered in full."""
        params = {
            k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in (query or {}).items()
            if v not in (None, "", False)
        }
        target = f"{self.url}{K8S_PREFIX}{quote(connection, safe='')}{path}"
        if params:
            target += "?" + urlencode(params)
        headers = {**caller.headers(), "Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        async with self._client().request(method, target, data=body, headers=headers) as resp:
            raw = await resp.read()
            parsed: Any = raw.decode(errors="replace")
            if raw and "json" in resp.headers.get("Content-Type", ""):
                parsed = orjson.loads(raw)
            return Answer(resp.status, parsed, [warning_text(w) for w in resp.headers.getall("Warning", [])])

    async def exec(
        self, caller: Caller, connection: str, path: str, query: list[tuple[str, str]], *, seconds: float
    ) -> Exec:
        """A non-interactive exec over WebSocket (v5 channels, as kubectl speaks it): output and exit status."""
        target = f"{self.url}{K8S_PREFIX}{quote(connection, safe='')}{path}?{urlencode(query)}"
        headers = caller.headers()
        out = Exec()
        try:
            async with (
                asyncio.timeout(seconds),
                self._client().ws_connect(target, headers=headers, protocols=EXEC_PROTOCOLS, max_msg_size=0) as ws,
            ):
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                        continue
                    channel, data = msg.data[0], msg.data[1:]
                    if channel in (1, 2):
                        out.output[channel] += data
                    elif channel == 3:
                        out.status = orjson.loads(data) if data else {}
        except aiohttp.WSServerHandshakeError as exc:
            out.refused = exc.status
        except TimeoutError:
            out.timed_out = True
        return out

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
