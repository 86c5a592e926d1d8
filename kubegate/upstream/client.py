"""The one way kubegate calls a cluster: exact target bytes, its own credentials, the caller's impersonation.

The URL is the connection's server plus the raw path and query that the request info stage judged,
byte for byte (yarl's `encoded=True`: nothing is re-quoted, normalised or dropped), so the cluster reads
the target kubegate decided on. Credentials and Impersonate-* headers are added here and nowhere else,
after the client's own identity headers were stripped (proxy/headers.py). Failures to reach the cluster
become Kubernetes Status refusals that name the connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from kubegate.kube.status import Refused
from kubegate.upstream.credentials import CredentialError

if TYPE_CHECKING:
    from kubegate.identity.model import Identity
    from kubegate.upstream.connection import Connection


def unreachable(connection: str, exc: Exception) -> Refused:
    """The refusal when the cluster cannot be reached at all (refused, reset, TLS failure)."""
    return Refused(
        502,
        f"kubegate could not reach the API server of connection {connection}: {exc.__class__.__name__}",
        reason="BadGateway",
    )


class UpstreamClient:
    """Calls to one connection's API server, as kubegate itself or impersonating a verified caller."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def url(self, raw_path: str, raw_query: str = "") -> URL:
        """The cluster URL of a judged target: the same bytes, never re-encoded."""
        target = raw_path + (f"?{raw_query}" if raw_query else "")
        return URL(self.connection.server + target, encoded=True)

    async def identity_headers(self, identity: Identity | None) -> list[tuple[str, str]]:
        """kubegate's Authorization, plus impersonation of `identity` (None: kubegate acts as itself)."""
        conn = self.connection
        try:
            if identity is None:
                authorization = await conn.credentials.authorization(None)
                return [("Authorization", authorization)] if authorization else []
            return await conn.upstream_identity_headers(identity)
        except CredentialError as exc:
            raise Refused(
                502,
                f"kubegate could not get its own credentials for connection {conn.name}: {exc}",
                reason="BadGateway",
            ) from exc

    def timeout(self, stream: bool = False) -> aiohttp.ClientTimeout:
        read = None if stream else self.connection.config.request_timeout_seconds
        return aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read)

    @contextlib.asynccontextmanager
    async def open(
        self,
        method: str,
        raw_path: str,
        raw_query: str,
        *,
        identity: Identity | None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        stream: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request whose response the caller reads (streamed or not); redirects are never followed."""
        conn = self.connection
        sent: CIMultiDict[str] = CIMultiDict(headers)
        for name, value in await self.identity_headers(identity):
            sent.add(name, value)
        try:
            async with conn.session.request(
                method,
                self.url(raw_path, raw_query),
                headers=sent,
                data=body or None,
                allow_redirects=False,
                timeout=self.timeout(stream),
            ) as response:
                yield response
        except TimeoutError as exc:
            raise Refused(
                504, f"the API server of connection {conn.name} did not answer in time", reason="Timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise unreachable(conn.name, exc) from exc

    async def call(
        self,
        method: str,
        raw_path: str,
        raw_query: str = "",
        *,
        identity: Identity | None,
        body: bytes | dict[str, Any] | None = None,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
    ) -> tuple[int, Any]:
        """A whole JSON exchange: (status, decoded answer or None when it is not JSON)."""
        given = list(headers)
        names = {name.lower() for name, _ in given}
        # Defaults only where the caller's headers (a dry run carries kubectl's) have none: a repeated
        # User-Agent is refused by strict servers (aiohttp's, the sandbox's) though Go's accepts it.
        defaults = (("Accept", "application/json"), ("User-Agent", "kubegate"))
        sent = [(k, v) for k, v in defaults if k.lower() not in names]
        sent += given
        data = orjson.dumps(body) if isinstance(body, dict) else body
        if data is not None:
            sent.append(("Content-Type", content_type))
        async with self.open(method, raw_path, raw_query, identity=identity, headers=sent, body=data) as response:
            raw = await response.read()
            status = response.status
        try:
            return status, orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return status, None
