"""Masking the fields of one Kubernetes object, by kind, as a Plan says.

Only values change: keys, metadata and structure stay, so kubectl, `-o jsonpath` and client
libraries read a masked object like any other. `seen`, when given, collects the original values
that were replaced, so a Table can mask cells that print them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from kubegate.masking.marker import MARKER, MARKER_B64
from kubegate.masking.paths import apply_path
from kubegate.masking.plan import POD_SPEC_PATHS, Plan

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
PARTIAL = "PartialObjectMetadata"


def mask_fields(plan: Plan, obj: dict[str, Any], kind: str | None, seen: set[str] | None = None) -> bool:
    """Mask one object in place; True if anything changed."""
    changed = False
    if kind is not None and plan.touches(kind):
        changed = _by_kind(plan, obj, kind, seen)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and isinstance(annotations.get(LAST_APPLIED), str):
            changed |= mask_last_applied(plan, annotations, kind, seen)
    if plan.scan_text_fields:
        changed |= scan_strings(plan, obj, seen)
    return changed


def scan_strings(plan: Plan, node: dict[str, Any] | list[Any], seen: set[str] | None) -> bool:
    """credentials-in-text reads every string value of every object: annotations, labels, CRD fields, a
    Status message. The last-applied annotation is left to its own masking (it must stay JSON), and
    managedFields hold field names, not values. (The hottest loop of masking: one call per container.)"""
    changed = False
    mask = plan.text.mask
    for key, value in node.items() if isinstance(node, dict) else enumerate(node):
        if isinstance(value, str):
            if key == LAST_APPLIED:
                continue
            masked = mask(value)
            if masked is value or masked == value:
                continue
            if seen is not None:
                seen.add(value)
            node[key] = masked  # type: ignore[index]  # replaces a value: the dict keeps its size
            changed = True
        elif isinstance(value, dict | list) and key != "managedFields":
            changed |= scan_strings(plan, value, seen)
    return changed


def _by_kind(plan: Plan, obj: dict[str, Any], kind: str, seen: set[str] | None) -> bool:
    changed = False
    if kind == "Secret":
        changed = _secret(plan, obj, seen)
    elif kind == "ConfigMap":
        changed = _configmap(plan, obj, seen)
    elif kind == "TokenRequest":
        status = obj.get("status")
        if plan.serviceaccount_tokens and isinstance(status, dict):
            changed = _hide(status, "token", MARKER, seen)
    elif kind in POD_SPEC_PATHS:
        spec: Any = obj
        for key in POD_SPEC_PATHS[kind]:
            spec = spec.get(key) if isinstance(spec, dict) else None
        if isinstance(spec, dict):
            changed = _pod_spec(plan, spec, seen)
    for rule in plan.rules_for(kind):
        fn: Callable[[str], str] = _replacer(seen) if rule.action == "replace" else _detector(plan, seen)
        changed |= apply_path(obj, rule.steps, fn)
    return changed


def _hide(mapping: dict[str, Any], key: str, marker: str, seen: set[str] | None) -> bool:
    value = mapping.get(key)
    if value is None or value == marker:
        return False
    if seen is not None and isinstance(value, str):
        seen.add(value)
    mapping[key] = marker
    return True


def _replacer(seen: set[str] | None) -> Callable[[str], str]:
    def replace(value: str) -> str:
        if seen is not None and value != MARKER:
            seen.add(value)
        return MARKER

    return replace


def _detector(plan: Plan, seen: set[str] | None) -> Callable[[str], str]:
    def detect(value: str) -> str:
        masked = plan.detect.mask(value)
        if seen is not None and masked != value:
            seen.add(value)
        return masked

    return detect


def _secret(plan: Plan, obj: dict[str, Any], seen: set[str] | None) -> bool:
    changed = False
    data = obj.get("data")
    string_data = obj.get("stringData")
    if plan.secret_values:
        if isinstance(data, dict):
            for key in data:
                changed |= _hide(data, key, MARKER_B64, seen)
        if isinstance(string_data, dict):
            for key in string_data:
                changed |= _hide(string_data, key, MARKER, seen)
    elif plan.serviceaccount_tokens and obj.get("type") == SA_TOKEN_TYPE:
        if isinstance(data, dict):
            changed |= _hide(data, "token", MARKER_B64, seen)
        if isinstance(string_data, dict):
            changed |= _hide(string_data, "token", MARKER, seen)
    return changed


def _configmap(plan: Plan, obj: dict[str, Any], seen: set[str] | None) -> bool:
    changed = False
    keys = plan.configmap_keys_re if plan.configmap_keys else None
    for field, marker in (("data", MARKER), ("binaryData", MARKER_B64)):
        values = obj.get(field)
        if not isinstance(values, dict):
            continue
        for key in values:
            if keys is not None and keys.match(key):
                changed |= _hide(values, key, marker, seen)
    return changed


def _pod_spec(plan: Plan, spec: dict[str, Any], seen: set[str] | None) -> bool:
    changed = False
    names = plan.env_names if plan.env_credentials else None
    if names is None:
        return False
    for list_name in CONTAINER_LISTS:
        containers = spec.get(list_name)
        if not isinstance(containers, list):
            continue
        for container in containers:
            if not isinstance(container, dict):
                continue
            env = container.get("env")
            if isinstance(env, list):
                for var in env:
                    if not isinstance(var, dict) or not isinstance(var.get("value"), str):
                        continue
                    name = var.get("name")
                    if names is not None and isinstance(name, str) and names.match(name):
                        changed |= _hide(var, "value", MARKER, seen)
    return changed


def mask_last_applied(plan: Plan, annotations: dict[str, Any], kind: str | None, seen: set[str] | None) -> bool:
    """The annotation is the applied object as JSON: mask it with the same rules and write it back
    as JSON rather than replacing it with the marker. `kubectl apply` parses it for its three-way
    merge: with the marker it would fail; with masked values and every key intact, a key removed
    from the manifest is still deleted, and a value that differs from the (masked) live one is
    sent again, which is what applying the manifest means. Unparseable annotations become the marker."""
    inner = plan.annotation_plan
    if kind not in (None, PARTIAL) and not inner.touches(kind):
        return False
    raw = annotations[LAST_APPLIED]
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        return _hide(annotations, LAST_APPLIED, MARKER, seen)
    doc_kind = doc.get("kind") if isinstance(doc.get("kind"), str) else kind
    changed = doc_kind is not None and inner.touches(doc_kind) and _by_kind(inner, doc, doc_kind, seen)
    if inner.scan_text_fields:
        changed |= scan_strings(inner, doc, seen)
    if not changed:
        return False
    annotations[LAST_APPLIED] = orjson.dumps(doc).decode() + ("\n" if raw.endswith("\n") else "")
    return True
