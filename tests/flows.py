"""A Flow with nothing on it yet, for tests of hooks that need no request, connection or upstream."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow


def bare_flow() -> Flow:
    return Flow(
        request=make_mocked_request("GET", "/"),
        connection=None,  # type: ignore[arg-type]
        method="GET",
        raw_path="/",
        query_string="",
        headers=CIMultiDict(),
    )
