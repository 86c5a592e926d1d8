"""Label and field selectors with apimachinery's syntax, so `-l` and `--field-selector` filter as in kube."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

Predicate = Callable[[dict[str, Any]], bool]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_TERM = re.compile(
    rf"\s*(?:(?P<not>!)\s*(?P<nkey>{_KEY})"
    rf"|(?P<key>{_KEY})(?:\s*(?P<op>==|=|!=|>|<)\s*(?P<value>{_VALUE})"
    rf"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*(?:,|$)"
)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _requirement(m: re.Match[str]) -> Predicate:
    if m.group("not"):
        key = m.group("nkey")
        return lambda o: key not in _labels(o)
    key, op, setop = m.group("key"), m.group("op"), m.group("setop")
    if op in ("=", "=="):
        value = m.group("value")
        return lambda o: _labels(o).get(key) == value
    if op == "!=":
        value = m.group("value")
        return lambda o: _labels(o).get(key) != value
    if op in (">", "<"):
        try:
            bound = int(m.group("value"))
        except ValueError:
            raise bad_request(
                f"unable to parse requirement: for '{op}' operator, the value must be an integer"
            ) from None

        def compare(o: dict[str, Any]) -> bool:
            raw = _labels(o).get(key)
            if raw is None or not re.fullmatch(r"-?\d+", raw):
                return False
            return int(raw) > bound if op == ">" else int(raw) < bound

        return compare
    if setop:
        values = {v.strip() for v in m.group("values").split(",") if v.strip()}
        if setop == "in":
            return lambda o: _labels(o).get(key) in values
        return lambda o: _labels(o).get(key) not in values
    return lambda o: key in _labels(o)


def label_selector(text: str) -> Predicate:
    """Parse a label selector; an empty one matches everything. Bad syntax is a 400, as in kube."""
    text = text.strip()
    if not text:
        return lambda o: True
    preds: list[Predicate] = []
    pos = 0
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or m.end() == pos:
            raise bad_request(f"unable to parse requirement: invalid label selector: {text!r}")
        preds.append(_requirement(m))
        pos = m.end()
    return lambda o: all(p(o) for p in preds)


def _split_unescaped(text: str, sep: str) -> list[str]:
    return re.split(rf"(?<!\\){re.escape(sep)}", text)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _pod_fields(obj: dict[str, Any]) -> dict[str, str]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {
        "status.phase": status.get("phase", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.restartPolicy": spec.get("restartPolicy", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "spec.schedulerName": spec.get("schedulerName", ""),
        "status.podIP": status.get("podIP", ""),
    }


def _event_fields(obj: dict[str, Any]) -> dict[str, str]:
    inv = obj.get("involvedObject") or {}
    fields = {
        f"involvedObject.{k}": str(inv.get(k, ""))
        for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    }
    fields.update(
        {
            "reason": obj.get("reason", ""),
            "type": obj.get("type", ""),
            "source": (obj.get("source") or {}).get("component", ""),
            "reportingComponent": obj.get("reportingComponent", ""),
        }
    )
    return fields


EXTRA_FIELDS: dict[str, Callable[[dict[str, Any]], dict[str, str]]] = {
    "pods": _pod_fields,
    "events": _event_fields,
    "secrets": lambda o: {"type": o.get("type", "")},
    "namespaces": lambda o: {"status.phase": (o.get("status") or {}).get("phase", "")},
}


def object_fields(resource: str, obj: dict[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata", {})
    fields = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", "")}
    extra = EXTRA_FIELDS.get(resource)
    if extra:
        fields.update(extra(obj))
    return fields


def field_selector(resource: str, text: str) -> Predicate:
    """Parse a field selector for `resource`; an unsupported field is a 400, as in kube."""
    text = text.strip()
    if not text:
        return lambda o: True
    known = set(object_fields(resource, {}))
    terms: list[tuple[str, bool, str]] = []
    for raw in _split_unescaped(text, ","):
        m = re.fullmatch(r"\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*", raw)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{raw}'")
        field, op, value = m.group(1), m.group(2), _unescape(m.group(3))
        if field not in known:
            raise bad_request(f"field label not supported: {field}")
        terms.append((field, op != "!=", value))

    def match(o: dict[str, Any]) -> bool:
        fields = object_fields(resource, o)
        return all((fields.get(f) == v) == equal for f, equal, v in terms)

    return match
