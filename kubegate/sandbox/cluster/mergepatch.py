"""JSON merge patch (RFC 7386), as kube-apiserver applies `application/merge-patch+json`: the
approval summary shows a merge patch's result with it, and the sandbox cluster applies one."""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """target with patch merged in: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
