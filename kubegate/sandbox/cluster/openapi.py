"""Minimal OpenAPI documents. kubectl reads OpenAPI v3 to learn that the server validates fields itself
(the `fieldValidation` parameter on each kind's PATCH operation) and which patch types it takes; without
that it refuses to create or apply. Schemas are left out: kubectl then uses its compiled-in types."""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from .discovery import VERSION
from .kinds import Kind, group_versions, kinds_in

PATCH_BODIES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation(kind: Kind, action: str, op_id: str, patch: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
    }
    if patch:
        op["parameters"] = [
            {"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True} for n in _QUERY
        ]
        op["requestBody"] = {"content": {t: {"schema": {"type": "object"}} for t in PATCH_BODIES}, "required": True}
    return op


def _paths(kind: Kind) -> dict[str, Any]:
    base = f"/{_gv_path(kind.group, kind.version)}"
    collection = f"{base}/namespaces/{{namespace}}/{kind.resource}" if kind.namespaced else f"{base}/{kind.resource}"
    name = kind.kind
    if "get" not in kind.verbs:
        return {collection: {"post": _operation(kind, "post", f"create{name}")}}
    item = f"{collection}/{{name}}"
    paths: dict[str, Any] = {
        collection: {"get": _operation(kind, "list", f"list{name}"), "post": _operation(kind, "post", f"create{name}")},
        item: {
            "get": _operation(kind, "get", f"read{name}"),
            "put": _operation(kind, "put", f"replace{name}"),
            "patch": _operation(kind, "patch", f"patch{name}", patch=True),
            "delete": _operation(kind, "delete", f"delete{name}"),
        },
    }
    for sub in kind.subresources:
        if "patch" in sub.verbs and not sub.kind:
            paths[f"{item}/{sub.name}"] = {
                "patch": _operation(kind, "patch", f"patch{name}{sub.name.title()}", patch=True)
            }
    return paths


@cache
def group_document(group: str, version: str) -> bytes | None:
    kinds = kinds_in(group, version)
    if not kinds:
        return None
    paths: dict[str, Any] = {}
    for k in kinds:
        paths.update(_paths(k))
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
    return orjson.dumps(doc)


@cache
def index() -> bytes:
    paths = {}
    for group, version in group_versions():
        doc = group_document(group, version) or b""
        digest = hashlib.sha512(doc).hexdigest()[:64].upper()
        path = _gv_path(group, version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return orjson.dumps({"paths": paths})


@cache
def swagger_v2() -> bytes:
    return orjson.dumps(
        {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": {},
            "definitions": {},
        }
    )
