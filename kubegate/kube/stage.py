"""Request info: what the request does, read exactly as kube-apiserver would, before any decision."""

from __future__ import annotations

from kubegate.flow import Flow, Stage
from kubegate.kube.requestinfo import BadPath, parse_request_info
from kubegate.kube.status import Refused


def is_stream(method: str, verb: str, subresource: str, query: tuple[tuple[str, str], ...]) -> bool:
    """Responses that stay open until the client leaves: watches and followed logs."""
    if verb == "watch":
        return True
    follow = next((v for k, v in query if k == "follow"), None)
    return method == "GET" and subresource == "log" and follow is not None and follow.lower() not in ("0", "false")


class RequestInfoStage(Stage):
    name = "requestinfo"

    async def on_request(self, flow: Flow) -> None:
        try:
            info = parse_request_info(flow.method, flow.raw_path, flow.query_string)
        except BadPath as exc:
            raise Refused(
                400,
                f"kubegate will not interpret this request path: {exc}; send the path "
                "as kubectl would (no encoded '/', no '.' or '..' or empty segments)",
                reason="BadRequest",
            ) from exc
        flow.info = info
        flow.is_stream = is_stream(flow.method, info.verb, info.subresource, info.query)
