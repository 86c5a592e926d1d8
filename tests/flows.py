"""Flows for tests: one with nothing on it yet, for hooks that need no request, connection or upstream; and
the one a test gateway mounted at the root makes of a request, as app.handle_kube does under /k8s/<name>."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.proxy.headers import upstream_request_headers
from kubegate.upstream.connection import Connection


def bare_flow() -> Flow:
    return Flow(
        request=make_mocked_request("GET", "/"),
        connection=None,  # type: ignore[arg-type]
        method="GET",
        raw_path="/",
        query_string="",
        headers=CIMultiDict(),
    )


async def flow_of(request: web.Request, connection: Connection) -> Flow:
    path, _, query = request.raw_path.partition("?")
    upgrade = "Upgrade" in request.headers
    return Flow(
        request=request,
        connection=connection,
        method=request.method,
        raw_path=path,
        query_string=query,
        headers=upstream_request_headers(request.headers),
        body=b"" if upgrade else await request.read(),
        is_upgrade=upgrade,
    )
