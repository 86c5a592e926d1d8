"""The four PATCH bodies kube-apiserver accepts: JSON patch (RFC 6902), JSON merge patch (RFC 7386),
strategic merge patch (keyed list merges and `$patch` directives) and, through managedfields.py,
server-side apply. Strategic merge keys come from the core types' patchMergeKey tags."""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer
import orjson

from .errors import ApiError, bad_request
from .mergepatch import merge_patch

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)

_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "secrets": "name",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
}
PRIMITIVE_SETS = frozenset({"finalizers"})


def merge_key(field: str, parent: str) -> str | None:
    """The patchMergeKey of list `field` inside map `parent` (service `spec.ports` key on `port`)."""
    if field == "ports":
        return "port" if parent == "spec" else "containerPort"
    return _MERGE_KEYS.get(field)


def json_patch(doc: dict[str, Any], body: bytes) -> dict[str, Any]:
    try:
        ops = orjson.loads(body)
        patch = jsonpatch.JsonPatch(ops)
    except (orjson.JSONDecodeError, jsonpatch.InvalidJsonPatch, TypeError) as exc:
        raise bad_request(str(exc)) from None
    try:
        result: dict[str, Any] = patch.apply(doc)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise ApiError(
            422,
            "the server rejected our request due to an error in our request",
            "Invalid",
            {"causes": [{"reason": "UnexpectedServerResponse", "message": str(exc)}]},
        ) from None
    return result


def _clean(value: Any, field: str = "", parent: str = "") -> Any:
    """A patch value with its directives resolved against nothing (a fresh subtree)."""
    if isinstance(value, dict):
        merged = strategic_merge({}, value, field)
        return merged if merged is not None else {}
    if isinstance(value, list):
        return _merge_list([], value, field, parent)
    return value


def strategic_merge(original: dict[str, Any], patch: dict[str, Any], field: str = "") -> dict[str, Any] | None:
    """Apply a strategic merge patch map to `original`; None means the map itself is deleted."""
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return strategic_merge({}, {k: v for k, v in patch.items() if k != "$patch"}, field)
    if directive is not None:
        raise bad_request(f"Unknown patch type: {directive} in map: {dict(patch)}")
    result = dict(original)
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [x for x in result.get(name) or [] if x not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            base = result.get(key)
            merged = strategic_merge(base if isinstance(base, dict) else {}, value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            base = result.get(key)
            result[key] = _merge_list(base if isinstance(base, list) else [], value, key, field)
        else:
            result[key] = value
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, order in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(result.get(key.split("/", 1)[1]), list):
            name = key.split("/", 1)[1]
            result[name] = _reorder(result[name], order, merge_key(name, field))
    return result


def _merge_list(original: list[Any], patch: list[Any], field: str, parent: str) -> list[Any]:
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return [_clean(e, field, parent) for e in patch if not (isinstance(e, dict) and "$patch" in e)]
    key = merge_key(field, parent)
    if key is None:
        if field in PRIMITIVE_SETS:
            return list(original) + [x for x in patch if x not in original]
        return [_clean(e, field, parent) for e in patch]
    result = list(original)
    for elem in patch:
        if not isinstance(elem, dict) or key not in elem:
            raise bad_request(f"map: {elem} does not contain declared merge key: {key}")
        idx = next((i for i, e in enumerate(result) if isinstance(e, dict) and e.get(key) == elem[key]), None)
        if elem.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            result.append(_clean(elem, field, parent))
        else:
            merged = strategic_merge(result[idx], elem, field)
            if merged is None:
                result.pop(idx)
            else:
                result[idx] = merged
    return result


def _reorder(items: list[Any], order: Any, key: str | None) -> list[Any]:
    if not isinstance(order, list):
        return items
    ids = [o.get(key) if key and isinstance(o, dict) else o for o in order]

    def rank(item: Any) -> int:
        ident = item.get(key) if key and isinstance(item, dict) else item
        return ids.index(ident) if ident in ids else len(ids)

    return sorted(items, key=rank)


def parse_json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"error decoding patch: {exc}") from None


def apply_patch(content_type: str, current: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The object after a JSON, merge or strategic patch (apply patches go through managedfields)."""
    if content_type == JSON_PATCH:
        return json_patch(current, body)
    patch = parse_json_body(body)
    if not isinstance(patch, dict):
        raise bad_request("error decoding patch: the patch must be a JSON object")
    if content_type == MERGE_PATCH:
        result: dict[str, Any] = merge_patch(current, patch)
        return result
    merged = strategic_merge(current, patch)
    if merged is None:
        raise bad_request("the patch may not delete the whole object")
    return merged
