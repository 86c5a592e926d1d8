"""Field ownership (metadata.managedFields) and server-side apply.

A simplified structured-merge-diff: an object's fields are a set of paths (map fields, keyed list
elements, set members; atomic lists are leaves). Apply merges the applied configuration like a strategic
merge, refuses to change a value another manager owns unless forced (409 with kube's conflict text),
and removes the fields a manager stopped applying when nobody else owns them. Other writes record
`Update` entries for the fields they changed.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import ApiError
from .patching import PRIMITIVE_SETS, merge_key, strategic_merge

Path = tuple[tuple[str, str], ...]
MARK = (".", "")
_IGNORED_META = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)


def _key_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _trackable(obj: dict[str, Any], subresource: str) -> dict[str, Any]:
    """The part of an object that fields are tracked for: status on the status subresource, else the
    rest without identity metadata."""
    if subresource == "status":
        return {"status": obj.get("status")} if obj.get("status") else {}
    view = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IGNORED_META}
    if meta:
        view["metadata"] = meta
    else:
        view.pop("metadata", None)
    return view


def _walk(value: Any, field: str, parent: str, path: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk(v, k, field, (*path, ("f", k)), out)
        return
    if isinstance(value, list) and value:
        key = merge_key(field, parent)
        if key and all(isinstance(e, dict) and key in e for e in value):
            for e in value:
                elem = (*path, ("k", _key_text({key: e[key]})))
                out.add((*elem, MARK))
                for k, v in e.items():
                    _walk(v, k, field, (*elem, ("f", k)), out)
            return
        if field in PRIMITIVE_SETS:
            out.update((*path, ("v", _key_text(x))) for x in value)
            return
    out.add(path)


def field_set(obj: dict[str, Any], subresource: str = "") -> set[Path]:
    out: set[Path] = set()
    _walk(_trackable(obj, subresource), "", "", (), out)
    out.discard(())
    return out


def encode(paths: set[Path]) -> dict[str, Any]:
    """FieldsV1 JSON: {"f:spec": {"f:replicas": {}}, "k:{\"name\":\"app\"}": {".": {}}}."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for kind, text in path:
            node = node.setdefault("." if kind == "." else f"{kind}:{text}", {})
    return root


def decode(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for name, child in fields.items():
        if name == ".":
            out.add((*prefix, MARK))
            continue
        kind, _, text = name.partition(":")
        path = (*prefix, (kind, text))
        if child:
            out |= decode(child, path)
        else:
            out.add(path)
    return out


_MISSING = object()


def _locate(obj: Any, path: Path) -> Any:
    node = obj
    for kind, text in path:
        if kind == ".":
            return node
        if kind == "f":
            if not isinstance(node, dict) or text not in node:
                return _MISSING
            node = node[text]
        elif kind == "k":
            key = orjson.loads(text)
            if not isinstance(node, list):
                return _MISSING
            node = next(
                (e for e in node if isinstance(e, dict) and all(e.get(k) == v for k, v in key.items())), _MISSING
            )
        else:
            value = orjson.loads(text)
            return value if isinstance(node, list) and value in node else _MISSING
        if node is _MISSING:
            return node
    return node


def _remove(obj: dict[str, Any], path: Path) -> None:
    if path and path[-1] == MARK:
        path = path[:-1]
    if not path:
        return
    parent = _locate(obj, path[:-1])
    kind, text = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(text, None)
    elif kind == "k" and isinstance(parent, list):
        key = orjson.loads(text)
        parent[:] = [e for e in parent if not (isinstance(e, dict) and all(e.get(k) == v for k, v in key.items()))]
    elif kind == "v" and isinstance(parent, list):
        value = orjson.loads(text)
        parent[:] = [e for e in parent if e != value]


def path_text(path: Path) -> str:
    """A path as structured-merge-diff prints it: `.spec.containers[name="app"].image`."""
    out = ""
    for kind, text in path:
        if kind == "f":
            out += f".{text}"
        elif kind == "k":
            key = orjson.loads(text)
            out += "[" + ",".join(f"{k}={orjson.dumps(v).decode()}" for k, v in key.items()) + "]"
        elif kind == "v":
            out += f"[={text}]"
    return out


def _manager_text(entry: dict[str, Any]) -> str:
    text = f'"{entry.get("manager", "")}"'
    if entry.get("subresource"):
        text += f' with subresource "{entry["subresource"]}"'
    if entry.get("operation") == "Update":
        text += f" using {entry.get('apiVersion', '')}"
    return text


def _entry(
    manager: str, operation: str, api_version: str, now: str, paths: set[Path], subresource: str
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": encode(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def _same(entry: dict[str, Any], manager: str, operation: str, subresource: str) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == operation
        and entry.get("subresource", "") == subresource
    )


def record_update(
    old: dict[str, Any] | None, new: dict[str, Any], manager: str, api_version: str, now: str, subresource: str = ""
) -> None:
    """Give `manager` the fields this non-apply write changed, and take them from everyone else."""
    entries = list((old or {}).get("metadata", {}).get("managedFields") or [])
    before = field_set(old, subresource) if old else set()
    after = field_set(new, subresource)
    changed = {p for p in after if p not in before or (p[-1] != MARK and _locate(old, p) != _locate(new, p))}
    removed = before - after
    result: list[dict[str, Any]] = []
    mine: set[Path] = set(changed)
    for e in entries:
        owned = decode(e.get("fieldsV1") or {})
        if _same(e, manager, "Update", subresource):
            mine |= owned - removed
            continue
        owned -= changed | removed
        if owned:
            result.append({**e, "fieldsV1": encode(owned)})
    if mine:
        result.append(_entry(manager, "Update", api_version, now, mine, subresource))
    if result:
        new["metadata"]["managedFields"] = result
    else:
        new["metadata"].pop("managedFields", None)


def conflict_error(conflicts: list[tuple[str, Path]]) -> ApiError:
    """internal.NewConflictError: 409 with one cause per conflicting field."""
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {m}", "field": path_text(p)} for m, p in conflicts
    ]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {m}: {path_text(p)}"
    else:
        lines: list[str] = []
        for manager in sorted({m for m, _ in conflicts}):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {path_text(p)}" for m, p in conflicts if m == manager]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, message, "Conflict", {"causes": causes})


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    api_version: str,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """The object after `manager` applies `applied` (a full configuration) onto `live` (or nothing)."""
    applied_fields = field_set(applied, subresource)
    base = live or {}
    entries = list(base.get("metadata", {}).get("managedFields") or [])
    conflicts: list[tuple[str, Path]] = []
    others: list[tuple[dict[str, Any], set[Path]]] = []
    previous: set[Path] = set()
    for e in entries:
        owned = decode(e.get("fieldsV1") or {})
        if _same(e, manager, "Apply", subresource):
            previous = owned
            continue
        if e.get("subresource", "") != subresource:
            others.append((e, owned))
            continue
        for p in sorted(owned & applied_fields):
            if p[-1] != MARK and live is not None and _locate(live, p) != _locate(applied, p):
                conflicts.append((_manager_text(e), p))
        others.append((e, owned))
    if conflicts and not force:
        raise conflict_error(conflicts)

    result = strategic_merge(base, {k: v for k, v in applied.items() if k != "status" or subresource}) or {}
    still_owned: set[Path] = set().union(*(o for _, o in others)) if others else set()
    for p in sorted(previous - applied_fields, key=len, reverse=True):
        if p not in still_owned:
            _remove(result, p)

    kept: list[dict[str, Any]] = []
    for e, owned in others:
        if force:
            owned = owned - {p for _, p in conflicts}
        if owned:
            kept.append({**e, "fieldsV1": encode(owned)})
    kept.insert(0, _entry(manager, "Apply", api_version, now, applied_fields, subresource))
    result.setdefault("metadata", {})["managedFields"] = kept
    return result
