"""Request bodies in and JSON responses out, gzip-compressed above 128 KiB as kube-apiserver does."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import yaml
from aiohttp import web

from .errors import ApiError, bad_request, unsupported_media_type
from .protobuf import PROTOBUF, ProtobufError, UnknownKind, decode_body

GZIP_THRESHOLD = 128 * 1024
BODY_TYPES = ["application/json", "application/yaml", PROTOBUF]


def accepts_gzip(request: web.Request) -> bool:
    for token in request.headers.get("Accept-Encoding", "").split(","):
        name, _, params = token.strip().partition(";")
        if name.strip().lower() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def respond(request: web.Request, obj: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    body = orjson.dumps(obj)
    headers = {"Content-Type": content_type}
    if len(body) > GZIP_THRESHOLD and accepts_gzip(request):
        body = gzip.compress(body, compresslevel=4)
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return web.Response(status=status, body=body, headers=headers)


def error_response(request: web.Request, exc: ApiError) -> web.Response:
    return respond(request, exc.status(), exc.code)


def media_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def decode_object(body: bytes, content_type: str) -> Any:
    """A JSON, YAML or Kubernetes protobuf request body; anything else (CBOR) is 415."""
    if content_type in ("", "application/json", "*/*"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if content_type in ("application/yaml", "application/apply-patch+yaml"):
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise bad_request(f"error converting YAML to JSON: {exc}") from None
    if content_type == PROTOBUF:
        try:
            return decode_body(body)
        except UnknownKind:
            raise unsupported_media_type(PROTOBUF, ["application/json", "application/yaml"]) from None
        except ProtobufError as exc:
            raise bad_request(str(exc)) from None
    raise unsupported_media_type(content_type, BODY_TYPES)


async def read_object(request: web.Request) -> dict[str, Any]:
    obj = decode_object(await request.read(), media_type(request))
    if not isinstance(obj, dict):
        raise bad_request("the body of the request must be a JSON or YAML object")
    return obj
