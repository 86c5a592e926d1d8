"""kube-apiserver's error Status objects, worded as apimachinery's `errors` package words them.

The gateway relays and records these, and kubectl prints them: the exact text is part of the contract.
"""

from __future__ import annotations

from typing import Any

from kubegate.kube.status import status_object

from .kinds import Kind


class ApiError(Exception):
    """Stops a request; the server turns it into a Status response with `code`."""

    def __init__(
        self, code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details

    def status(self) -> dict[str, Any]:
        return status_object(self.code, self.message, self.reason, self.details)


def _details(kind: Kind, name: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name} if name else {}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind.resource
    details.update(extra)
    return details


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, f'{kind.qualified} "{name}" not found', "NotFound", _details(kind, name))


def namespace_not_found(name: str) -> ApiError:
    return ApiError(404, f'namespaces "{name}" not found', "NotFound", {"name": name, "kind": "namespaces"})


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(409, f'{kind.qualified} "{name}" already exists', "AlreadyExists", _details(kind, name))


def conflict(kind: Kind, name: str, why: str) -> ApiError:
    return ApiError(
        409, f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}', "Conflict", _details(kind, name)
    )


MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(kind: Kind, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (reason, field, message-after-the-field), e.g. ("FieldValueRequired", "spec.containers",
    "Required value")."""
    texts = [f"{field}: {message}" for _, field, message in causes]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: dict[str, Any] = {"name": name} if name else {}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind.kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    return ApiError(422, f'{kind.qualified_kind} "{name}" is invalid: {joined}', "Invalid", details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "BadRequest")


def method_not_allowed() -> ApiError:
    return ApiError(405, "the server does not allow this method on the requested resource", "MethodNotAllowed")


def not_acceptable(accepted: list[str]) -> ApiError:
    return ApiError(406, "only the following media types are accepted: " + ", ".join(accepted), "NotAcceptable")


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(accepted)}",
        "UnsupportedMediaType",
    )


def resource_not_found() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", "NotFound", {})


def expired(message: str) -> ApiError:
    return ApiError(410, message, "Expired")


def internal(message: str) -> ApiError:
    return ApiError(500, f"Internal error occurred: {message}", "InternalError", {"causes": [{"message": message}]})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(group: str, resource: str, name: str, why: str) -> ApiError:
    """apierrors.NewForbidden: `<resource>[.<group>] ["name"] is forbidden: <why>` or `forbidden: <why>`."""
    if not resource:
        message = f"forbidden: {why}"
    elif name:
        message = (
            f'{resource}.{group} "{name}" is forbidden: {why}' if group else f'{resource} "{name}" is forbidden: {why}'
        )
    else:
        message = f"{resource}.{group} is forbidden: {why}" if group else f"{resource} is forbidden: {why}"
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if resource:
        details["kind"] = resource
    return ApiError(403, message, "Forbidden", details)
