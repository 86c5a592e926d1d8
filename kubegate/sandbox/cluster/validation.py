"""The validation a client most often trips over, with kube-apiserver's field error wording."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from .errors import bad_request, invalid
from .kinds import Kind

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})*"
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

Cause = tuple[str, str, str]


def _quote(value: Any) -> str:
    return orjson.dumps(value).decode() if isinstance(value, str) else str(value)


def _name_causes(kind: Kind, name: str) -> list[Cause]:
    if kind.name_rule == "path":
        if name in (".", ".."):
            return [("FieldValueInvalid", "metadata.name", f"Invalid value: \"{name}\": may not be '{name}'")]
        bad = next((c for c in ("/", "%") if c in name), None)
        if bad:
            return [("FieldValueInvalid", "metadata.name", f"Invalid value: \"{name}\": may not contain '{bad}'")]
        return []
    if kind.name_rule == "label":
        if len(name) > 63 or not re.fullmatch(_LABEL, name):
            return [("FieldValueInvalid", "metadata.name", f"Invalid value: {_quote(name)}: {LABEL_MSG}")]
        return []
    if len(name) > 253 or not re.fullmatch(_SUBDOMAIN, name):
        return [("FieldValueInvalid", "metadata.name", f"Invalid value: {_quote(name)}: {SUBDOMAIN_MSG}")]
    return []


def _containers(spec: dict[str, Any], prefix: str) -> list[Cause]:
    containers = spec.get("containers")
    if not containers:
        return [("FieldValueRequired", f"{prefix}.containers", "Required value")]
    causes: list[Cause] = []
    for i, c in enumerate(containers):
        if not c.get("name"):
            causes.append(("FieldValueRequired", f"{prefix}.containers[{i}].name", "Required value"))
        if not c.get("image"):
            causes.append(("FieldValueRequired", f"{prefix}.containers[{i}].image", "Required value"))
    return causes


def _go_map(labels: dict[str, str]) -> str:
    return "map[string]string{" + ", ".join(f"{_quote(k)}:{_quote(v)}" for k, v in sorted(labels.items())) + "}"


def _deployment(obj: dict[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    selector = (spec.get("selector") or {}).get("matchLabels")
    if not spec.get("selector"):
        causes.append(("FieldValueRequired", "spec.selector", "Required value"))
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        causes.append(
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`",
            )
        )
    causes += _containers((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
    return causes


def _secret(obj: dict[str, Any]) -> None:
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(
                f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data for key "{key}"'
            ) from None


def validate(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
    """Raise 422 Invalid (or 400 for undecodable data) when `obj` would be refused by kube-apiserver."""
    name = obj.get("metadata", {}).get("name", "")
    causes = (
        _name_causes(kind, name)
        if name
        else [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")]
    )
    if kind.resource == "pods":
        causes += _containers(obj.get("spec") or {}, "spec")
    elif kind.resource == "deployments":
        causes += _deployment(obj)
    elif kind.resource == "secrets":
        _secret(obj)
    elif kind.resource in ("rolebindings", "clusterrolebindings"):
        ref = obj.get("roleRef") or {}
        if not ref.get("name"):
            causes.append(("FieldValueRequired", "roleRef.name", "Required value"))
        if old is not None and old.get("roleRef") != obj.get("roleRef"):
            causes.append(("FieldValueInvalid", "roleRef", f"Invalid value: {_quote(ref)}: cannot change roleRef"))
    if causes:
        raise invalid(kind, name, causes)
