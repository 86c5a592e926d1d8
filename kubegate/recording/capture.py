"""What of a request and its response goes into an event: never a token or an Authorization header,
bodies up to a limit, and Secret values on the request side masked before they are stored."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import orjson

from kubegate.kube.stage import is_stream as stream_request

if TYPE_CHECKING:
    from kubegate.proxy.flow import Flow

MASK_TEXT = "<masked by kubegate>"
MASK_B64 = base64.b64encode(MASK_TEXT.encode()).decode()
SECRET_FIELDS = ("data", "stringData")


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


def _mask_secret_object(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = dict(obj)
        if isinstance(out.get("data"), dict):
            out["data"] = dict.fromkeys(out["data"], MASK_B64)
        if isinstance(out.get("stringData"), dict):
            out["stringData"] = dict.fromkeys(out["stringData"], MASK_TEXT)
        return out
    if isinstance(obj, list):  # a JSON patch: mask values written under /data or /stringData
        return [
            {**op, "value": MASK_B64 if not isinstance(op.get("value"), dict) else dict.fromkeys(op["value"], MASK_B64)}
            if isinstance(op, dict) and "value" in op
            and str(op.get("path", "")).lstrip("/").split("/")[0] in SECRET_FIELDS
            else op
            for op in obj
        ]
    return obj


def mask_secret_body(body: bytes, *, is_secret_request: bool) -> bytes:
    """Replace Secret values in a request body with a mask: a body sent to `secrets`, or one whose kind
    is Secret. A Secret body that is not JSON (protobuf, YAML) is replaced whole: fail closed."""
    if not body:
        return body
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return MASK_TEXT.encode() if is_secret_request else body
    if is_secret_request or (isinstance(obj, dict) and obj.get("kind") == "Secret"):
        return orjson.dumps(_mask_secret_object(obj))
    return body


def request_fields(flow: Flow, limit: int) -> dict[str, Any]:
    """The request as kubegate understood and decided it; enough to replay and to audit."""
    info = flow.info
    is_secret = info is not None and info.resource == "secrets"
    decision = flow.decision
    if decision is not None and hasattr(decision, "as_dict"):
        decision = decision.as_dict()
    elif not isinstance(decision, dict):
        decision = None
    fields: dict[str, Any] = {
        "flow": flow.id,
        "method": flow.method,
        "path": flow.raw_path,
        "query": flow.query_string,
        "info": info.as_dict() if info is not None else None,
        "decision": decision,
        "content_type": flow.headers.get("Content-Type", ""),
    }
    body = mask_secret_body(flow.body, is_secret_request=is_secret)
    fields.update(body_fields(body, limit))
    return fields


def response_headers(flow: Flow) -> dict[str, str]:
    return {name: flow.response_headers[name] for name in ("Content-Type", "Content-Encoding")
            if name in flow.response_headers}


def is_stream(flow: Flow) -> bool:
    """A response that never ends on its own: recorded chunk by chunk, never buffered whole."""
    if flow.is_stream or flow.is_upgrade:
        return True
    info = flow.info
    return info is not None and stream_request(flow.method, info.verb, info.subresource, info.query)
