"""Server-side printing (meta.k8s.io Table) with the columns of kube-apiserver's printers, and the
PartialObjectMetadata forms; these are what `kubectl get` asks for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from .kinds import Kind

Column = tuple[str, str, int]  # name, type, priority
Row = Callable[[dict[str, Any]], list[Any]]
NONE = "<none>"

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is "
    "not guaranteed to be set in happens-before order across separate operations. Clients may not set "
    "this value. It is represented in RFC3339 form and is in UTC."
)


def human_duration(seconds: int) -> str:
    """apimachinery's duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    when = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return human_duration(int((dt.datetime.now(dt.UTC) - when).total_seconds()))


def _meta(o: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = o.get("metadata", {})
    return meta


def _join(values: list[str]) -> str:
    return ",".join(values) if values else NONE


def _selector(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or NONE


def _pod(o: dict[str, Any]) -> list[Any]:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    containers = (o.get("spec") or {}).get("containers") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    status = o.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    if _meta(o).get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    return [
        _meta(o)["name"],
        f"{ready}/{len(containers)}",
        reason,
        str(restarts),
        age(_meta(o).get("creationTimestamp")),
        status.get("podIP") or NONE,
        (o.get("spec") or {}).get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        NONE,
    ]


def _deployment(o: dict[str, Any]) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    return [
        _meta(o)["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        age(_meta(o).get("creationTimestamp")),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        _selector((spec.get("selector") or {}).get("matchLabels")),
    ]


def _ports(spec: dict[str, Any]) -> str:
    parts = []
    for p in spec.get("ports") or []:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        parts.append(f"{p.get('port')}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(parts) or NONE


def _service(o: dict[str, Any]) -> list[Any]:
    spec = o.get("spec") or {}
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = [i.get("ip") or i.get("hostname", "") for i in ingress] + list(spec.get("externalIPs") or [])
    if spec.get("type") == "ExternalName":
        external = [spec.get("externalName", "")]
    return [
        _meta(o)["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or NONE,
        ",".join(external) if external else ("<pending>" if spec.get("type") == "LoadBalancer" else NONE),
        _ports(spec),
        age(_meta(o).get("creationTimestamp")),
        _selector(spec.get("selector")),
    ]


def _binding(o: dict[str, Any]) -> list[Any]:
    subjects = o.get("subjects") or []
    ref = o.get("roleRef") or {}

    def names(kind: str) -> str:
        return ", ".join(
            s.get("name", "") if kind != "ServiceAccount" else f"{s.get('namespace', '')}/{s['name']}"
            for s in subjects
            if s.get("kind") == kind
        )

    return [
        _meta(o)["name"],
        f"{ref.get('kind')}/{ref.get('name')}",
        age(_meta(o).get("creationTimestamp")),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


def _event(o: dict[str, Any]) -> list[Any]:
    inv = o.get("involvedObject") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp")
    first = o.get("firstTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp")
    source = (o.get("source") or {}).get("component") or o.get("reportingComponent") or ""
    return [
        age(last),
        o.get("type", ""),
        o.get("reason", ""),
        f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
        inv.get("fieldPath", ""),
        source,
        o.get("message", ""),
        age(first),
        int(o.get("count") or 1),
        _meta(o)["name"],
    ]


def _with_age(*cells: Callable[[dict[str, Any]], Any]) -> Row:
    def row(o: dict[str, Any]) -> list[Any]:
        return [_meta(o)["name"], *(c(o) for c in cells), age(_meta(o).get("creationTimestamp"))]

    return row


_S, _I = "string", "integer"
PRINTERS: dict[str, tuple[list[Column], Row]] = {
    "pods": (
        [
            ("Name", _S, 0),
            ("Ready", _S, 0),
            ("Status", _S, 0),
            ("Restarts", _S, 0),
            ("Age", _S, 0),
            ("IP", _S, 1),
            ("Node", _S, 1),
            ("Nominated Node", _S, 1),
            ("Readiness Gates", _S, 1),
        ],
        _pod,
    ),
    "deployments": (
        [
            ("Name", _S, 0),
            ("Ready", _S, 0),
            ("Up-to-date", _I, 0),
            ("Available", _I, 0),
            ("Age", _S, 0),
            ("Containers", _S, 1),
            ("Images", _S, 1),
            ("Selector", _S, 1),
        ],
        _deployment,
    ),
    "secrets": (
        [("Name", _S, 0), ("Type", _S, 0), ("Data", _I, 0), ("Age", _S, 0)],
        _with_age(lambda o: o.get("type", ""), lambda o: len(o.get("data") or {})),
    ),
    "configmaps": (
        [("Name", _S, 0), ("Data", _I, 0), ("Age", _S, 0)],
        _with_age(lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
    ),
    "namespaces": (
        [("Name", _S, 0), ("Status", _S, 0), ("Age", _S, 0)],
        _with_age(lambda o: (o.get("status") or {}).get("phase", "")),
    ),
    "serviceaccounts": (
        [("Name", _S, 0), ("Secrets", _I, 0), ("Age", _S, 0)],
        _with_age(lambda o: len(o.get("secrets") or [])),
    ),
    "services": (
        [
            ("Name", _S, 0),
            ("Type", _S, 0),
            ("Cluster-IP", _S, 0),
            ("External-IP", _S, 0),
            ("Port(s)", _S, 0),
            ("Age", _S, 0),
            ("Selector", _S, 1),
        ],
        _service,
    ),
    "rolebindings": (
        [
            ("Name", _S, 0),
            ("Role", _S, 0),
            ("Age", _S, 0),
            ("Users", _S, 1),
            ("Groups", _S, 1),
            ("ServiceAccounts", _S, 1),
        ],
        _binding,
    ),
    "clusterrolebindings": (
        [
            ("Name", _S, 0),
            ("Role", _S, 0),
            ("Age", _S, 0),
            ("Users", _S, 1),
            ("Groups", _S, 1),
            ("ServiceAccounts", _S, 1),
        ],
        _binding,
    ),
    "events": (
        [
            ("Last Seen", _S, 0),
            ("Type", _S, 0),
            ("Reason", _S, 0),
            ("Object", _S, 0),
            ("Subobject", _S, 1),
            ("Source", _S, 1),
            ("Message", _S, 0),
            ("First Seen", _S, 1),
            ("Count", _I, 1),
            ("Name", _S, 1),
        ],
        _event,
    ),
}
DEFAULT: tuple[list[Column], Row] = (
    [("Name", _S, 0), ("Created At", "date", 0)],
    lambda o: [_meta(o)["name"], _meta(o).get("creationTimestamp")],
)


def _column_definitions(columns: list[Column]) -> list[dict[str, Any]]:
    docs = {"Name": _NAME_DOC, "Age": _AGE_DOC, "Created At": _AGE_DOC}
    return [
        {
            "name": name,
            "type": typ,
            "format": "name" if name == "Name" else "",
            "description": docs.get(name, f"{name} of the object."),
            "priority": prio,
        }
        for name, typ, prio in columns
    ]


def partial(obj: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}", "metadata": _meta(obj)}


def partial_list(items: list[dict[str, Any]], list_meta: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": list_meta,
        "items": [{"metadata": _meta(o)} for o in items],
    }


def table(
    kind: Kind,
    items: list[dict[str, Any]],
    list_meta: dict[str, Any],
    include_object: str = "Metadata",
    version: str = "v1",
    headers: bool = True,
) -> dict[str, Any]:
    """A Table of `items`; `include_object` is the includeObject parameter (None, Metadata or Object)."""
    columns, row = PRINTERS.get(kind.resource, DEFAULT)
    rows = []
    for o in items:
        r: dict[str, Any] = {"cells": row(o)}
        if include_object == "Object":
            r["object"] = {"kind": kind.kind, "apiVersion": kind.api_version, **o}
        elif include_object != "None":
            r["object"] = partial(o, version)
        rows.append(r)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": list_meta,
        "columnDefinitions": _column_definitions(columns) if headers else None,
        "rows": rows,
    }
