"""What a reviewer reads before saying yes: the object a create makes, and the diff an update or patch
of any type makes, between the object now and the object the cluster would store (the policy stage's
dry run, so the reviewer sees what will really be stored), plus the operations of a JSON patch.

The current object is read through the connection as the requester (impersonated), so a request
never shows a reviewer or its requester more of the cluster than the requester may read; when it
cannot be read, the object it would become is shown alone. Both sides are masked by the gateway's masker
with the request's own mask profiles, and always with secret-values: a summary is stored, shown in the
web UI and sent to webhooks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import orjson
import yaml

from kubegate.flow import Flow
from kubegate.kube.body import media_type
from kubegate.kube.status import Refused
from kubegate.masking.config import SECRET_VALUES
from kubegate.masking.masker import Masker, kind_for

MAX_SUMMARY = 16_000
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
NOISE = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        meta = {k: v for k, v in obj["metadata"].items() if k not in NOISE}
        if isinstance(meta.get("annotations"), dict):
            meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
        obj = {**obj, "metadata": meta}
    return obj


def _yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False)


def _diff(before: Any, after: Any, label: str) -> str:
    lines = difflib.unified_diff(
        _yaml(_clean(before)).splitlines(),
        _yaml(_clean(after)).splitlines(),
        f"{label} (now)",
        f"{label} (after)",
        lineterm="",
        n=3,
    )
    return "\n".join(lines) or "(no change)"


def _json_patch_lines(ops: list[Any]) -> str:
    out = []
    for op in ops:
        if not isinstance(op, dict):
            continue
        value = f" = {orjson.dumps(op['value']).decode()}" if "value" in op else ""
        source = f" from {op['from']}" if "from" in op else ""
        out.append(f"{op.get('op')} {op.get('path')}{source}{value}")
    return "\n".join(out)


async def _current(flow: Flow) -> Any:
    """The object as the requester may read it now, or None."""
    try:
        status, answer = await flow.connection.client.call("GET", flow.raw_path, identity=flow.identity)
    except Refused:
        return None
    return _clean(answer) if status == 200 and isinstance(answer, dict) else None


Mask = Callable[[Any], Any]


def _masking(flow: Flow, masker: Masker) -> Mask:
    """A masked copy of an object of this request's kind, under its profiles and secret-values."""
    assert flow.info is not None
    profiles = tuple(dict.fromkeys((SECRET_VALUES, *(flow.decision.masks if flow.decision else ()))))
    kind = kind_for(flow.info.resource, flow.info.subresource)

    def mask(obj: Any) -> Any:
        return None if obj is None else masker.mask_request_body(obj, profiles, kind)

    return mask


def _changed_secret_keys(before: Any, after: Any) -> str:
    """Masking hides values on both sides; name the keys whose values change, so a reviewer still sees it."""

    def values(obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            return {}
        return {
            f"{field}.{k}": v
            for field in ("data", "stringData")
            if isinstance(obj.get(field), dict)
            for k, v in obj[field].items()
        }

    old, new = values(before), values(after)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return f"\nSecret values changed (masked): {', '.join(changed)}" if changed else ""


async def summarize(flow: Flow, masker: Masker) -> str:
    info = flow.info
    if info is None or not info.is_resource_request:
        return ""
    mask = _masking(flow, masker)
    sent, after = mask(flow.sent), mask(flow.object)
    target = "/".join(p for p in (info.resource, info.name, info.subresource) if p)
    where = f" in namespace {info.namespace}" if info.namespace and info.resource != "namespaces" else ""
    if info.command:
        text = (
            f"{info.verb} {target}{where}"
            + (f" container {info.container}" if info.container else "")
            + f"\ncommand: {' '.join(info.command)}"
        )
    elif info.verb == "create" and isinstance(after, dict):
        text = f"create {info.resource_path}{where}:\n{_yaml(_clean(after))}"
    elif info.verb in ("update", "patch") and isinstance(after, dict):
        media = media_type(flow.headers.get("Content-Type", ""))
        text = (
            f"JSON patch of {target}{where}:\n{_json_patch_lines(sent)}\n"
            if media == "application/json-patch+json" and isinstance(sent, list)
            else ""
        )
        raw = await _current(flow)
        text += (
            _diff(mask(raw), after, target)
            if raw is not None
            else f"{info.verb} {target}{where} (current object not readable) to:\n{_yaml(_clean(after))}"
        )
        if info.resource == "secrets" and raw is not None:
            text += _changed_secret_keys(raw, flow.object)
    else:
        text = f"{info.verb} {target}{where}"
        if isinstance(sent, dict) and sent:
            text += f"\noptions: {orjson.dumps(sent).decode()}"
    return text[:MAX_SUMMARY]
