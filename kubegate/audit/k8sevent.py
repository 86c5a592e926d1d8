"""Recorded events as Kubernetes audit events (`audit.k8s.io/v1` `Event`), so tools that read a cluster's
audit log (Falco's k8saudit plugin, Datadog, Splunk) read kubegate's unchanged.

One request gives RequestReceived (the request event), then ResponseComplete (its response, or the refusal),
or ResponseStarted and ResponseComplete for a stream (its response headers, then its end). An MCP tool call
is a request of its own (`post /mcp`, the tool named in an annotation): RequestReceived when it was called,
ResponseComplete when its result went to the client; the Kubernetes requests it made are exported as
above, in the same session. kubegate's own findings ride in annotations: the decision and the rules that
made it, the masks, the approval that let it through, the session and chain position, and the CI claims of
the caller. Level is Metadata: bodies (and a tool call's arguments and result) never leave the store this way.

kubegate's own actions are events too, since a SIEM must see who let what through (and who was told no)
next to the requests, and that records left the store on purpose: access requests asked for, approved,
denied, revoked and expired, and what retention deleted. Each is one ResponseComplete event shaped like the
admin API call that does it (`/api/v1/requests/{id}/approve` ...) on `accessrequests.kubegate.dev/{id}`,
with the acting person as `user` (the reviewer, or the requester), or `system:kubegate` for what the gateway
did itself (expiry, retention; no caller can be named `system:...`). Their auditID is derived from the
event's hash, so a repeated export repeats it.
"""

from __future__ import annotations

import datetime
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

API_VERSION = "audit.k8s.io/v1"
PREFIX = "kubegate.dev/"
EXPORTED = frozenset({"request", "response", "refused", "end", "grant_used"})
"""The event types a request's audit events are made from (for kubegate's own actions, see ACTIONS; for MCP
tool calls, TOOL_EVENTS)."""
TOOL_EVENTS = frozenset({"tool_call", "tool_result"})
MCP_URI = "/mcp"
_REMEMBER = 10_000  # requests whose later stages may still come


@dataclass(frozen=True, slots=True)
class Row:
    """One stored event with its session's identity columns (None when the session is gone)."""

    seq: int
    hash: str
    session_id: str | None
    ts: float
    type: str
    data: str
    session: dict[str, Any] | None


def timestamp(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_id(flow: str) -> str:
    try:
        return str(uuid.UUID(hex=flow))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, flow))


class Converter:
    """Turns rows into audit events in chain order; remembers each request until its last stage is seen,
    so a response carries its request's verb, object and decision."""

    def __init__(self) -> None:
        self._requests: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._approvals: OrderedDict[str, str] = OrderedDict()

    def remember(self, row: Row) -> None:
        """A request event (or tool call) read only to give a later stage its context (it was exported before)."""
        data = orjson.loads(row.data)
        if row.type == "tool_call":
            self._tool_context(row, data)
        else:
            self._request_context(row, data)

    def convert(self, row: Row) -> dict[str, Any] | None:
        data = orjson.loads(row.data)
        if row.type in TOOL_EVENTS:
            return self._tool_event(row, data)
        if row.type == "grant_used":
            self._keep(self._approvals, str(data.get("flow", "")), str(data.get("request", "")))
            return None
        if row.type == "request":
            ctx = self._request_context(row, data)
            return self._event(row, ctx, "RequestReceived", None)
        if row.type in ACTIONS:
            return _action(row, data)
        if row.type not in EXPORTED:
            return None
        known = self._requests.get(str(data.get("flow", "")))
        if known is None:
            if "method" not in data:  # a stage whose request is not known here (see Exporter)
                return None
            known = self._request_context(row, data)
        ctx = known
        if row.type == "response":
            ctx["code"] = data.get("status")
        elif row.type == "end":  # a stream's end carries no status: the one its response started with
            data.setdefault("status", ctx.get("code"))
        stream_opened = row.type == "response" and data.get("stream")
        return self._event(row, ctx, "ResponseStarted" if stream_opened else "ResponseComplete", data)

    def _tool_context(self, row: Row, data: dict[str, Any]) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "flow": str(data.get("call", "")),
            "uri": MCP_URI,
            "verb": "post",
            "info": {},
            "received": row.ts,
            "action": None,
            "rules": [],
            "masks": [],
            "created": "",
        }
        self._keep(self._requests, ctx["flow"], ctx)
        return ctx

    def _tool_event(self, row: Row, data: dict[str, Any]) -> dict[str, Any]:
        """A tool call as the request it is; its arguments and result stay in the store (level Metadata)."""
        if row.type == "tool_call":
            event = self._event(row, self._tool_context(row, data), "RequestReceived", None)
        else:
            ctx = self._requests.get(str(data.get("call", ""))) or self._tool_context(row, data)
            event = self._event(row, ctx, "ResponseComplete", None)
            event["responseStatus"] = {"metadata": {}, "code": 200}
            outcome = "pending" if data.get("pending") else "error" if data.get("error") else "ok"
            event["annotations"][f"{PREFIX}mcp-outcome"] = outcome
            if data.get("pending"):
                event["annotations"][f"{PREFIX}mcp-pending-request"] = str(data["pending"])
        event["annotations"][f"{PREFIX}mcp-tool"] = str(data.get("tool", ""))
        return event

    @staticmethod
    def _keep(store: OrderedDict[str, Any], key: str, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > _REMEMBER:
            store.popitem(last=False)

    def _request_context(self, row: Row, data: dict[str, Any]) -> dict[str, Any]:
        info = data.get("info") or {}
        decision = data.get("decision") or {}
        action = decision.get("action")
        uri = data.get("path", "") + (f"?{data['query']}" if data.get("query") else "")
        ctx = {
            "flow": str(data.get("flow", "")),
            "uri": uri,
            "verb": info.get("verb") or str(data.get("method", "")).lower(),
            "info": info,
            "received": row.ts,
            "action": action,
            "rules": [m.get("rule", "") for m in decision.get("matches", []) if m.get("action") == action],
            "masks": list(decision.get("masks", [])),
            "created": _created_name(data),
        }
        self._keep(self._requests, ctx["flow"], ctx)
        return ctx

    def _event(self, row: Row, ctx: dict[str, Any], stage: str, data: dict[str, Any] | None) -> dict[str, Any]:
        session = row.session or {}
        info = ctx["info"]
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": API_VERSION,
            "level": "Metadata",
            "auditID": audit_id(ctx["flow"]),
            "stage": stage,
            "requestURI": ctx["uri"],
            "verb": ctx["verb"],
            "user": {
                "username": session.get("username", ""),
                "groups": list(session.get("groups") or []),
                **({"extra": {k: [str(v)] for k, v in session["claims"].items()}} if session.get("claims") else {}),
            },
            "requestReceivedTimestamp": timestamp(ctx["received"]),
            "stageTimestamp": timestamp(row.ts),
        }
        if session.get("source"):
            event["sourceIPs"] = [session["source"]]
        if session.get("user_agent"):
            event["userAgent"] = session["user_agent"]
        if info.get("is_resource_request"):
            ref = {
                "resource": info.get("resource"),
                "namespace": info.get("namespace"),
                "name": info.get("name") or ctx["created"],
                "apiGroup": info.get("api_group"),
                "apiVersion": info.get("api_version"),
                "subresource": info.get("subresource"),
            }
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        if data is not None:
            event["responseStatus"] = _status(data)
        event["annotations"] = self._annotations(row, ctx, session)
        return event

    def _annotations(self, row: Row, ctx: dict[str, Any], session: dict[str, Any]) -> dict[str, str]:
        notes = _chain_notes(row, session)
        if ctx["action"]:
            notes[f"{PREFIX}decision"] = ctx["action"]
            notes["authorization.k8s.io/decision"] = "allow" if ctx["action"] == "allow" else "forbid"
        if ctx["rules"]:
            notes[f"{PREFIX}rule"] = ",".join(ctx["rules"])
            notes["authorization.k8s.io/reason"] = f"kubegate policy rule {', '.join(ctx['rules'])}"
        if ctx["masks"]:
            notes[f"{PREFIX}masks"] = ",".join(ctx["masks"])
        if approval := self._approvals.get(ctx["flow"]):
            notes[f"{PREFIX}approval"] = approval
        for name, value in (session.get("claims") or {}).items():
            notes[f"{PREFIX}claim.{name}"] = str(value)
        return {k: v for k, v in notes.items() if v}


def _created_name(data: dict[str, Any]) -> str:
    """A create names its object in the body; kube-apiserver's audit log puts that name in objectRef too."""
    if data.get("method") != "POST" or data.get("encoding") != "utf-8" or data.get("truncated"):
        return ""
    try:
        name = orjson.loads(data.get("body", "")).get("metadata", {}).get("name")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def _status(data: dict[str, Any]) -> dict[str, Any]:
    status = data.get("status")
    if isinstance(status, dict):  # a refusal: kubegate's Status
        out: dict[str, Any] = {"metadata": {}, "code": int(status.get("code") or 0), "status": "Failure"}
        for key in ("message", "reason"):
            if status.get(key):
                out[key] = str(status[key])
        return out
    code = int(status or 0)
    out = {"metadata": {}, "code": code}
    if data.get("error"):
        out.update(status="Failure", message=str(data["error"]))
    return out


GATEWAY_USER = "system:kubegate"
ACCESS_REQUESTS = {"apiGroup": "kubegate.dev", "apiVersion": "v1", "resource": "accessrequests"}
RECORDED_EVENTS = {"apiGroup": "kubegate.dev", "apiVersion": "v1", "resource": "events"}
# recorded type -> verb, admin API path after /api/v1/requests/{id}, the outcome kubegate.dev/review names
_REVIEWS = {
    "approval": ("update", "/approve", "approved"),
    "denial": ("update", "/deny", "denied"),
    "grant_revoked": ("update", "/revoke", "revoked"),
    "request_expired": ("update", "", "expired"),
}
ACTIONS = frozenset({"access_request", "retention", *_REVIEWS})
"""kubegate's own actions that are exported (docs/audit.md says which types are not, and why)."""


def _action(row: Row, data: dict[str, Any]) -> dict[str, Any] | None:
    if row.type == "retention":
        return _retention(row, data)
    if row.type == "access_request":
        return _asked(row, data) if data.get("action") == "created" else None
    return _reviewed(row, data)


def _action_event(row: Row, verb: str, uri: str, user: dict[str, Any], ref: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": API_VERSION,
        "level": "Metadata",
        "auditID": audit_id(row.hash),
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": user,
        "objectRef": ref,
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": timestamp(row.ts),
        "stageTimestamp": timestamp(row.ts),
    }


def _chain_notes(row: Row, session: dict[str, Any]) -> dict[str, str]:
    """Where the event sits in kubegate's record: its type, chain position and hash, session and connection."""
    return {
        f"{PREFIX}event": row.type,
        f"{PREFIX}seq": str(row.seq),
        f"{PREFIX}hash": row.hash,
        f"{PREFIX}session": row.session_id or "",
        f"{PREFIX}connection": session.get("connection", ""),
    }


def _action_notes(row: Row, **more: Any) -> dict[str, str]:
    notes = {
        **_chain_notes(row, row.session or {}),
        **{PREFIX + key.replace("_", "-"): "" if value is None else str(value) for key, value in more.items()},
    }
    return {k: v for k, v in notes.items() if v}


def _requester(row: Row, data: dict[str, Any]) -> str:
    return str((row.session or {}).get("username") or data.get("requester") or "")


def _target(info: dict[str, Any]) -> str:
    """`delete namespaces pr-42`, `get pods/log shop/web`: what the held request would do."""
    if not info:
        return ""
    resource = "/".join(p for p in (info.get("resource"), info.get("subresource")) if p) or info.get("path", "")
    namespace = info.get("namespace") if info.get("resource") != "namespaces" else ""  # a namespace's is itself
    name = "/".join(p for p in (namespace, info.get("name")) if p)
    return " ".join(p for p in (info.get("verb"), resource, name) if p)


def _asked(row: Row, data: dict[str, Any]) -> dict[str, Any]:
    session = row.session or {}
    request_id = str(data.get("request", ""))
    user: dict[str, Any] = {"username": _requester(row, data), "groups": list(session.get("groups") or [])}
    event = _action_event(row, "create", "/api/v1/requests", user, {**ACCESS_REQUESTS, "name": request_id})
    rules = ",".join(str(r.get("rule", "")) for r in data.get("rules") or [] if isinstance(r, dict))
    event["annotations"] = _action_notes(
        row,
        approval=request_id,
        review="requested",
        rule=rules,
        mode=data.get("mode"),
        target=_target(data.get("info") or {}),
        scope=orjson.dumps(data["scope"]).decode() if data.get("scope") else None,
        reason=data.get("reason"),
        expires=timestamp(data["expires_at"]) if isinstance(data.get("expires_at"), int | float) else None,
    )
    return event


def _reviewed(row: Row, data: dict[str, Any]) -> dict[str, Any]:
    verb, path, outcome = _REVIEWS[row.type]
    request_id = str(data.get("request", ""))
    actor = data.get("reviewer") or data.get("by")
    user: dict[str, Any] = (
        {"username": str(actor), "groups": [str(g) for g in data.get("groups") or []]}
        if actor
        else {"username": GATEWAY_USER}
    )
    ref = {**ACCESS_REQUESTS, "name": request_id, "subresource": "approval"}
    event = _action_event(row, verb, f"/api/v1/requests/{request_id}{path}", user, ref)
    complete = data.get("complete")
    grant_expires = data.get("grant_expires_at")
    event["annotations"] = _action_notes(
        row,
        approval=request_id,
        review=outcome if complete is not False else "vote",  # one of several approvals a rule needs
        requester=_requester(row, data),
        comment=data.get("comment"),
        reason=data.get("reason"),
        grant_expires=timestamp(grant_expires) if isinstance(grant_expires, int | float) else None,
    )
    return event


def _retention(row: Row, data: dict[str, Any]) -> dict[str, Any]:
    event = _action_event(row, "deletecollection", "/kubegate/retention", {"username": GATEWAY_USER}, RECORDED_EVENTS)
    cutoff = data.get("cutoff")
    event["annotations"] = _action_notes(
        row,
        retention_through_seq=data.get("through_seq"),
        retention_last_hash=data.get("last_hash"),
        retention_cutoff=timestamp(cutoff) if isinstance(cutoff, int | float) else None,
        retention_events_removed=data.get("events_removed"),
        retention_sessions_removed=data.get("sessions_removed"),
    )
    return event
