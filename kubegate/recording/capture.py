"""What of a request and its response goes into an event: never a token or an Authorization header,
bodies up to a limit, and sensitive values on the request side masked before they are stored."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import orjson

from kubegate.kube.stage import is_stream as stream_request
from kubegate.masking.masker import kind_for

if TYPE_CHECKING:
    from kubegate.flow import Flow
    from kubegate.masking.masker import Masker

REQUEST_PROFILES = ("secret-values",)  # recorded on top of the decision's masks, whatever the policy says


def body_fields(body: bytes, limit: int, *, total: int | None = None) -> dict[str, Any]:
    """`body` (text when it is UTF-8, else base64) cut at `limit` bytes, with its size and a truncation flag."""
    size = len(body) if total is None else total
    kept = body[:limit]
    truncated = size > len(kept)
    fields: dict[str, Any] = {"bytes": size, "truncated": truncated}
    if not kept:
        return fields
    text = _utf8(kept, cut=truncated)
    if text is None:
        fields.update(body=base64.b64encode(kept).decode(), encoding="base64")
    else:
        fields.update(body=text, encoding="utf-8")
    return fields


def _utf8(data: bytes, *, cut: bool) -> str | None:
    # A cut may split a multi-byte character: drop at most its 3 leading bytes before giving up on text.
    for trim in range(4 if cut else 1):
        try:
            return data[: len(data) - trim].decode()
        except UnicodeDecodeError:
            continue
    return None


def request_fields(flow: Flow, limit: int, masker: Masker) -> dict[str, Any]:
    """The request as kubegate understood and decided it; enough to replay and to audit. The body is
    masked with Secret values always and with whatever else the decision masks."""
    info = flow.info
    masks = flow.decision.masks if flow.decision is not None else ()
    kind = kind_for(info.resource, info.subresource) if info is not None else None
    fields: dict[str, Any] = {
        "flow": flow.id,
        "method": flow.method,
        "path": flow.raw_path,
        "query": flow.query_string,
        "info": info.as_dict() if info is not None else None,
        "decision": flow.decision.as_dict() if flow.decision is not None else None,
        "content_type": flow.headers.get("Content-Type", ""),
    }
    profiles = (*REQUEST_PROFILES, *masks)
    sent = flow.object if flow.sent is None else flow.sent  # a protobuf body: what the cluster would store
    if sent is not None:
        body = orjson.dumps(masker.mask_request_body(sent, profiles, kind))
        fields["decoded"] = True
    else:
        body = masker.mask_request_bytes(flow.body, profiles, kind)
    fields.update(body_fields(body, limit))
    return fields


def response_headers(flow: Flow) -> dict[str, str]:
    return {
        name: flow.response_headers[name]
        for name in ("Content-Type", "Content-Encoding")
        if name in flow.response_headers
    }


def is_stream(flow: Flow) -> bool:
    """A response that never ends on its own: recorded chunk by chunk, never buffered whole."""
    if flow.is_stream or flow.is_upgrade:
        return True
    info = flow.info
    return info is not None and stream_request(flow.method, info.verb, info.subresource, info.query)
