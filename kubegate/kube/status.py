"""Kubernetes `Status` objects: every refusal kubegate makes is one, so kubectl prints it well."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    501: "NotImplemented",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_object(
    code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }
    if details:
        obj["details"] = details
    return obj


def status_response(
    code: int,
    message: str,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=code,
        body=orjson.dumps(status_object(code, message, reason, details)),
        content_type="application/json",
        headers=headers,
    )


class Refused(Exception):
    """Raised by any pipeline stage to stop a request; becomes a Status response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details

    def response(self) -> web.Response:
        headers = {"WWW-Authenticate": 'Bearer realm="kubegate"'} if self.code == 401 else None
        return status_response(self.code, self.message, self.reason, self.details, headers)

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.message, self.reason, self.details)
