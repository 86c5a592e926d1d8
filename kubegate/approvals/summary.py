"""What a reviewer reads before saying yes: the object a create makes, the diff an update or merge
patch makes, the operations of a JSON patch, the fields a strategic-merge patch or apply sets.

The current object is read through the connection as the requester (impersonated), so a request
never shows a reviewer or its requester more of the cluster than the requester may read; when it
cannot be read, the patch itself is shown. Both sides are masked by the gateway's masker with
the request's own mask profiles, and always with secret-values: a summary is stored, shown in the
web UI and sent to webhooks.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import yaml

from kubegate.kube.mergepatch import merge_patch
from kubegate.masking.config import SECRET_VALUES
from kubegate.masking.masker import Masker, kind_for
from kubegate.proxy.flow import Flow
from kubegate.upstream.credentials import CredentialError

MAX_SUMMARY = 16_000
FETCH_TIMEOUT = 5.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
NOISE = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


def _parse(body: bytes, content_type: str) -> Any:
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        if media.endswith("yaml"):
            return yaml.safe_load(body)
        return orjson.loads(body)
    except (orjson.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError):
        return None


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
    lines = difflib.unified_diff(_yaml(_clean(before)).splitlines(), _yaml(_clean(after)).splitlines(),
                                 f"{label} (now)", f"{label} (after)", lineterm="", n=3)
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
    assert flow.identity is not None
    conn = flow.connection
    try:
        headers = dict(await conn.upstream_identity_headers(flow.identity))
    except CredentialError:
        return None
    headers["Accept"] = "application/json"
    try:
        async with conn.session.get(conn.server + flow.raw_path, headers=headers, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT)) as response:
            if response.status != 200:
                return None
            return _clean(orjson.loads(await response.read()))
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return None


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
        return {f"{field}.{k}": v for field in ("data", "stringData") if isinstance(obj.get(field), dict)
                for k, v in obj[field].items()}

    old, new = values(before), values(after)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return f"\nSecret values changed (masked): {', '.join(changed)}" if changed else ""


async def summarize(flow: Flow, masker: Masker) -> str:
    info = flow.info
    if info is None or not info.is_resource_request:
        return ""
    is_secret = info.resource == "secrets"
    mask = _masking(flow, masker)
    content_type = flow.headers.get("Content-Type", "")
    # The body stage has read create/update/patch bodies (protobuf included); delete options are read here.
    sent = flow.object if flow.object is not None else _parse(flow.body, content_type) if flow.body else None
    body = mask(sent)
    target = "/".join(p for p in (info.resource, info.name, info.subresource) if p)
    where = f" in namespace {info.namespace}" if info.namespace and info.resource != "namespaces" else ""
    if info.command:
        text = f"{info.verb} {target}{where}" + (f" container {info.container}" if info.container else "") + \
               f"\ncommand: {' '.join(info.command)}"
    elif info.verb == "create" and isinstance(body, dict):
        text = f"create {info.resource_path}{where}:\n{_yaml(_clean(body))}"
    elif info.verb == "update" and isinstance(body, dict):
        raw = await _current(flow)
        text = _diff(mask(raw), body, target) if raw is not None else \
            f"update {target}{where} (current object not readable) to:\n{_yaml(_clean(body))}"
        if is_secret and raw is not None:
            text += _changed_secret_keys(raw, sent)
    elif info.verb == "patch" and body is not None:
        text = await _patch_summary(flow, body, content_type, target, where, is_secret, mask)
    else:
        text = f"{info.verb} {target}{where}"
        if isinstance(body, dict) and body:
            text += f"\noptions: {orjson.dumps(body).decode()}"
    return text[:MAX_SUMMARY]


async def _patch_summary(flow: Flow, body: Any, content_type: str, target: str, where: str, is_secret: bool,
                         mask: Mask) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json-patch+json" and isinstance(body, list):
        return f"JSON patch of {target}{where}:\n{_json_patch_lines(body)}"
    if media == "application/merge-patch+json":
        raw = await _current(flow)
        if raw is not None:
            after = merge_patch(raw, _parse(flow.body, content_type))
            return _diff(mask(raw), mask(after), target) + (_changed_secret_keys(raw, after) if is_secret else "")
        return f"merge patch of {target}{where} (current object not readable):\n{_yaml(body)}"
    kind = "server-side apply" if media == "application/apply-patch+yaml" else "strategic merge patch"
    return f"{kind} of {target}{where}; the fields it sets:\n{_yaml(_clean(body))}"
