"""Writes that carry masked values: put back what the cluster holds, or refuse; never store a marker.

A caller that read an object through kubegate got its masked fields as the marker. Written back unchanged
(`kubectl get -o yaml | kubectl apply -f -`, `kubectl edit`, `replace`, a patch), each marker is replaced
by the value the cluster holds *at the same field of the same object*, read as the caller: the field's
masked current value must be exactly what the write carries there. Lists of objects are matched by their
`name` (containers, env, volumes...), others by position; a JSON patch's `value` by its pointer. The
last-applied annotation is a document of the object's own fields, restored against the object. Anything
else holding a marker (a new object, another key, a renamed env var, stringData) is refused, as is a JSON
patch operation that reads (copy, move, test) a path the caller's masks hide: it would move a hidden value
where masking does not look, or test guesses against it.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubegate.masking.fields import LAST_APPLIED
from kubegate.masking.marker import MARKER, MARKER_B64, MARKER_BYTES

Path = tuple[str | int, ...]
JSON_PATCH = "application/json-patch+json"
READING_OPS = {"copy": "from", "move": "from", "test": "path"}


class MaskedWrite(ValueError):
    """A write that would store a marker, or read a masked value; says which field."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


def has_marker(value: str) -> bool:
    """The marker, as text or as base64 the way Go decodes `[]byte` fields (line breaks ignored)."""
    if MARKER in value or MARKER_B64 in value:
        return True
    if len(value) < len(MARKER_B64) - 1:
        return False
    try:
        return MARKER_BYTES in base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        return False


def show(path: Path) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(the whole body)"


def markers(doc: Any, path: Path = ()) -> Iterator[Path]:
    """Where `doc` holds a marker (inside the last-applied annotation too)."""
    if isinstance(doc, str):
        if has_marker(doc):
            yield path
    elif isinstance(doc, dict):
        for key, value in doc.items():
            yield from markers(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from markers(value, (*path, i))


def _counterpart(items: list[Any], item: Any, index: int) -> Any:
    """The item of the current list that `item` stands for: same name for named objects, else same place."""
    if isinstance(item, dict) and "name" in item:
        return next((c for c in items if isinstance(c, dict) and c.get("name") == item["name"]), None)
    return items[index] if index < len(items) else None


@dataclass
class Restorer:
    """Restores one write against the object it writes: `current` as the caller may read it, `masked` the
    same object as the caller's masks show it. `restored` collects the values put back, so the object the
    cluster would store can be checked for any of them landing where the masks do not hide it."""

    current: Any
    masked: Any
    restored: list[str] = field(default_factory=list)

    def document(self, sent: Any) -> Any:
        """A body shaped like the object (update, merge, strategic merge and apply patches), restored."""
        return self._walk(copy.deepcopy(sent), self.current, self.masked, ())

    def _walk(self, sent: Any, current: Any, masked: Any, path: Path) -> Any:
        if isinstance(sent, str):
            if not has_marker(sent):
                return sent
            if isinstance(masked, str) and masked == sent and isinstance(current, str):
                self.restored.append(current)
                return current
            if path[-1:] == (LAST_APPLIED,):
                return self._last_applied(sent, path)
            raise MaskedWrite(
                show(path),
                "holds a masked value, and this object holds no value kubegate masked that way at this field",
            )
        if isinstance(sent, dict):
            if isinstance(current, dict) and "name" in sent and sent.get("name") != current.get("name"):
                current = masked = None  # a renamed item is another item
            for key, value in sent.items():
                sent[key] = self._walk(value, _get(current, key), _get(masked, key), (*path, key))
        elif isinstance(sent, list):
            cur = current if isinstance(current, list) else []
            msk = masked if isinstance(masked, list) else []
            for i, value in enumerate(sent):
                counterpart = _counterpart(cur, value, i)
                shown = _counterpart(msk, value, i) if counterpart is not None else None
                sent[i] = self._walk(value, counterpart, shown, (*path, i))
        return sent

    def _last_applied(self, sent: str, path: Path) -> str:
        """kubectl writes the manifest it applies into this annotation: its fields are the object's, so a
        marker there is restored from the object, else from the annotation the object holds now."""
        try:
            doc = orjson.loads(sent)
        except orjson.JSONDecodeError:
            raise MaskedWrite(show(path), "holds a masked value in an annotation that is not JSON") from None
        try:
            restored = self._walk(copy.deepcopy(doc), self.current, self.masked, ())
        except MaskedWrite:
            restored = self._walk(doc, _annotation(self.current), _annotation(self.masked), ())
        return orjson.dumps(restored).decode() + ("\n" if sent.endswith("\n") else "")

    def json_patch(self, ops: Any, hidden: set[Path]) -> Any:
        """A JSON patch: values restored by their pointer; an operation that reads a hidden path refused, and
        masked values refused in a patch that also moves list items (a pointer would then name another one)."""
        if not isinstance(ops, list):
            return ops
        out = copy.deepcopy(ops)
        restructures = any(isinstance(op, dict) and _restructures(op) for op in out)
        for n, op in enumerate(out):
            if not isinstance(op, dict):
                continue
            reads = READING_OPS.get(str(op.get("op")))
            source = pointer(op.get(reads)) if reads is not None else None
            if source is not None and any(_overlaps(source, p) for p in hidden):
                raise MaskedWrite(f"operation {n} ({op.get('op')} {op.get(reads)})", "reads a value your masks hide")
            if "value" not in op or not any(True for _ in markers(op["value"])):
                continue
            target = pointer(op.get("path"))
            rewritten = target is not None and any(
                isinstance(o, dict)
                and (p := pointer(o.get("path"))) is not None
                and len(p) < len(target)
                and target[: len(p)] == p
                for o in out[:n]
            )
            if target is None or restructures or rewritten:
                raise MaskedWrite(
                    f"operation {n} ({op.get('op')} {op.get('path')})",
                    "holds a masked value in a patch that also adds, removes, moves or copies; "
                    "send those changes as a separate patch",
                )
            op["value"] = self._walk(op["value"], _at(self.current, target), _at(self.masked, target), target)
        return out


def _restructures(op: dict[str, Any]) -> bool:
    name = op.get("op")
    if name in ("remove", "move", "copy"):
        return True
    target = pointer(op.get("path"))
    return name == "add" and target is not None and bool(target) and (isinstance(target[-1], int) or target[-1] == "-")


def _overlaps(a: Path, b: Path) -> bool:
    return a == b[: len(a)] or b == a[: len(b)]


def _annotation(obj: Any) -> Any:
    raw = _get(_get(_get(obj, "metadata"), "annotations"), LAST_APPLIED)
    try:
        return orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError:
        return None


def exposed(values: list[str], before: Any, after: Any) -> str | None:
    """A restored value that the masked object `after` shows and the masked object `before` did not."""
    shown_before = list(strings(before))
    shown_after = list(strings(after))
    for value in values:
        if any(value in s for s in shown_after) and not any(value in s for s in shown_before):
            return value
    return None


def strings(doc: Any) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from strings(value)


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, dict) else None


def pointer(text: Any) -> Path | None:
    """A JSON pointer (RFC 6901) as a path; list indices as ints."""
    if not isinstance(text, str) or (text and not text.startswith("/")):
        return None
    steps: list[str | int] = []
    for raw in text.split("/")[1:]:
        step = raw.replace("~1", "/").replace("~0", "~")
        steps.append(int(step) if step.isdigit() else step)
    return tuple(steps)


def _at(node: Any, path: Path) -> Any:
    for step in path:
        if isinstance(step, int) and isinstance(node, list):
            node = node[step] if step < len(node) else None
        elif isinstance(node, dict):
            node = node.get(str(step))
        else:
            return None
    return node


def differing_paths(current: Any, masked: Any, path: Path = ()) -> Iterator[Path]:
    """The paths where masking changed the object: what the caller's masks hide."""
    if isinstance(current, dict) and isinstance(masked, dict):
        for key, value in current.items():
            yield from differing_paths(value, masked.get(key), (*path, key))
    elif isinstance(current, list) and isinstance(masked, list):
        for i, value in enumerate(current):
            yield from differing_paths(value, masked[i] if i < len(masked) else None, (*path, i))
    elif current != masked:
        yield path
