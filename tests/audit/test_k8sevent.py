"""Recorded events become audit.k8s.io/v1 Events that validate against the Kubernetes schema, with kubegate's
decision, rule, masks, approval and CI claims as annotations, and no body."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kubegate.audit.k8sevent import Converter, Row
from tests.audit.schema import VALIDATOR, assert_audit_event

FLOW = "0123456789abcdef0123456789abcdef"
SESSION = {
    "username": "gh#repo:acme/app",
    "groups": ["ci-agents"],
    "claims": {"repository": "acme/app", "run_id": "42"},
    "connection": "prod",
    "user_agent": "kubectl/v1.32.4",
    "source": "10.0.0.7",
}
REQUEST = {
    "flow": FLOW,
    "method": "PATCH",
    "path": "/apis/apps/v1/namespaces/shop/deployments/web",
    "query": "fieldManager=kubectl",
    "body": '{"spec":{"replicas":3}}',
    "encoding": "utf-8",
    "info": {
        "verb": "patch",
        "is_resource_request": True,
        "api_group": "apps",
        "api_version": "v1",
        "namespace": "shop",
        "resource": "deployments",
        "subresource": "",
        "name": "web",
    },
    "decision": {
        "action": "allow",
        "masks": ["secret-values", "env-credentials"],
        "matches": [{"rule": "ci-deploys", "action": "allow"}, {"rule": "audit-all", "action": "log"}],
    },
}


def row(seq: int, type: str, data: dict[str, Any], session: dict[str, Any] | None = SESSION) -> Row:
    return Row(seq, f"{seq:064x}", "s1", 1_700_000_000.0 + seq, type, orjson.dumps(data).decode(), session)


def test_a_request_and_its_response_are_two_stages_of_one_audit_event() -> None:
    conv = Converter()
    assert conv.convert(row(1, "grant_used", {"flow": FLOW, "request": "ar-7f3k"})) is None
    received = conv.convert(row(2, "request", REQUEST))
    done = conv.convert(
        row(
            3,
            "response",
            {"flow": FLOW, "request_seq": 2, "status": 200, "duration_ms": 4.2, "body": '{"kind":"Deployment"}'},
        )
    )
    for event in (received, done):
        assert_audit_event(event)
    assert received is not None and done is not None
    assert received["stage"] == "RequestReceived" and done["stage"] == "ResponseComplete"
    assert received["auditID"] == done["auditID"] == "01234567-89ab-cdef-0123-456789abcdef"
    assert done["verb"] == "patch" and done["requestURI"] == REQUEST["path"] + "?fieldManager=kubectl"
    assert done["objectRef"] == {
        "resource": "deployments",
        "namespace": "shop",
        "name": "web",
        "apiGroup": "apps",
        "apiVersion": "v1",
    }
    assert done["user"] == {
        "username": "gh#repo:acme/app",
        "groups": ["ci-agents"],
        "extra": {"repository": ["acme/app"], "run_id": ["42"]},
    }
    assert done["sourceIPs"] == ["10.0.0.7"] and done["responseStatus"] == {"metadata": {}, "code": 200}
    assert done["requestReceivedTimestamp"] == "2023-11-14T22:13:22.000000Z"
    notes = done["annotations"]
    assert notes["kubegate.dev/decision"] == "allow" and notes["authorization.k8s.io/decision"] == "allow"
    assert notes["kubegate.dev/rule"] == "ci-deploys"
    assert notes["kubegate.dev/masks"] == "secret-values,env-credentials"
    assert notes["kubegate.dev/approval"] == "ar-7f3k"
    assert notes["kubegate.dev/claim.repository"] == "acme/app" and notes["kubegate.dev/claim.run_id"] == "42"
    assert (notes["kubegate.dev/seq"], notes["kubegate.dev/session"]) == ("3", "s1")
    assert "replicas" not in orjson.dumps([received, done]).decode()  # Metadata level: no body leaves


def test_a_refusal_and_a_stream_are_complete_events() -> None:
    conv = Converter()
    denied = conv.convert(
        row(
            1,
            "refused",
            {
                **REQUEST,
                "decision": {
                    "action": "deny",
                    "masks": [],
                    "matches": [{"rule": "kube-system-is-read-only", "action": "deny"}],
                },
                "status": {
                    "code": 403,
                    "reason": "Forbidden",
                    "message": "kube-system is managed by the platform team",
                },
            },
        )
    )
    assert denied is not None
    assert_audit_event(denied)
    assert denied["responseStatus"] == {
        "metadata": {},
        "code": 403,
        "status": "Failure",
        "reason": "Forbidden",
        "message": "kube-system is managed by the platform team",
    }
    assert denied["annotations"]["authorization.k8s.io/decision"] == "forbid"
    watch = {
        **REQUEST,
        "flow": "f" * 32,
        "method": "GET",
        "query": "watch=1",
        "info": {**REQUEST["info"], "verb": "watch"},
    }
    conv.convert(row(2, "request", watch))
    started = conv.convert(row(3, "response", {"flow": "f" * 32, "request_seq": 2, "status": 200, "stream": True}))
    ended = conv.convert(row(4, "end", {"flow": "f" * 32, "request_seq": 2, "bytes": 10, "chunks": 1, "error": ""}))
    assert started is not None and ended is not None
    assert (started["stage"], ended["stage"], ended["responseStatus"]["code"]) == (
        "ResponseStarted",
        "ResponseComplete",
        200,
    )
    for event in (started, ended):
        assert_audit_event(event)


def test_an_mcp_tool_call_is_a_request_of_its_own_without_its_arguments_or_result() -> None:
    conv = Converter()
    call = {"call": FLOW, "tool": "apply", "arguments": {"manifest": "kind: Secret"}, "mcp_session": "m1"}
    called = conv.convert(row(1, "tool_call", call))
    answered = conv.convert(
        row(
            4,
            "tool_result",
            {"call": FLOW, "call_seq": 1, "tool": "apply", "error": False, "pending": "ar-9", "body": "held"},
        )
    )
    for event in (called, answered):
        assert_audit_event(event)
    assert called is not None and answered is not None
    assert (called["stage"], answered["stage"]) == ("RequestReceived", "ResponseComplete")
    assert called["auditID"] == answered["auditID"] and answered["verb"] == "post" and answered["requestURI"] == "/mcp"
    assert answered["requestReceivedTimestamp"] == called["stageTimestamp"] != answered["stageTimestamp"]
    assert answered["responseStatus"] == {"metadata": {}, "code": 200}
    notes = answered["annotations"]
    assert notes["kubegate.dev/event"] == "tool_result" and notes["kubegate.dev/mcp-tool"] == "apply"
    assert notes["kubegate.dev/mcp-outcome"] == "pending" and notes["kubegate.dev/mcp-pending-request"] == "ar-9"
    assert "Secret" not in orjson.dumps([called, answered]).decode() and "held" not in orjson.dumps(answered).decode()
    failed = Converter().convert(row(5, "tool_result", {"call": "c2", "call_seq": 2, "tool": "get", "error": True}))
    assert failed is not None and failed["annotations"]["kubegate.dev/mcp-outcome"] == "error"  # its call unseen


def test_kubegate_bookkeeping_is_not_an_audit_event_and_a_session_that_is_gone_still_converts() -> None:
    conv = Converter()
    for type in ("session", "chunk", "binding", "grant_released", "stream", "port_forward"):
        assert conv.convert(row(1, type, {"flow": FLOW})) is None
    joined = {"request": "ar-7f3k", "action": "joined", "flow": FLOW}  # a retry of a held request: its own event
    assert conv.convert(row(1, "access_request", joined)) is None
    anonymous = conv.convert(row(2, "request", {**REQUEST, "decision": None}, session=None))
    assert anonymous is not None
    assert_audit_event(anonymous)
    assert anonymous["user"] == {"username": "", "groups": []}


@pytest.mark.parametrize("bad", [{"stage": "Done"}, {"auditID": "x"}, {"invented": 1}, {"annotations": {"a": 1}}])
def test_the_schema_refuses_what_kubernetes_would_not_read(bad: dict[str, Any]) -> None:
    event = Converter().convert(row(1, "request", REQUEST))
    assert event is not None
    assert not VALIDATOR.is_valid({**event, **bad})


ASKED = {
    "flow": FLOW,
    "request": "ar-7f3k",
    "requester": "gh#repo:acme/app",
    "action": "created",
    "mode": "wait",
    "fingerprint": "f" * 64,
    "rules": [{"rule": "prod-deletes", "groups": ["platform-oncall"], "users": [], "min_approvals": 2}],
    "expires_at": 1_700_000_900.5,
    "info": {"verb": "delete", "resource": "namespaces", "namespace": "pr-42", "name": "pr-42"},  # as parsed
    "scope": None,
    "reason": "",
}


def test_approval_decisions_and_retention_are_audit_events_of_who_did_them() -> None:
    conv = Converter()
    events = {
        "asked": conv.convert(row(1, "access_request", ASKED)),
        "vote": conv.convert(
            row(2, "approval", {"request": "ar-7f3k", "reviewer": "idp#bob", "groups": ["oncall"], "complete": False})
        ),
        "approved": conv.convert(
            row(
                3,
                "approval",
                {
                    "request": "ar-7f3k",
                    "reviewer": "idp#eve",
                    "groups": ["oncall"],
                    "comment": "cleanup of a finished PR",
                    "complete": True,
                    "grant_expires_at": 1_700_001_000.0,
                },
            )
        ),
        "denied": conv.convert(row(4, "denial", {"request": "ar-9x", "reviewer": "idp#bob", "reason": "not now"})),
        "revoked": conv.convert(row(5, "grant_revoked", {"request": "ar-7f3k", "by": "idp#root", "reason": "oops"})),
        "expired": conv.convert(row(6, "request_expired", {"request": "ar-8y"}, session=None)),
        "retention": conv.convert(
            row(
                7,
                "retention",
                {
                    "through_seq": 41,
                    "last_hash": "a" * 64,
                    "cutoff": 1_690_000_000.0,
                    "events_removed": 41,
                    "sessions_removed": 3,
                },
                session=None,
            )
        ),
    }
    for event in events.values():
        assert event is not None
        assert_audit_event(event)
        assert event["stage"] == "ResponseComplete" and event["responseStatus"] == {"metadata": {}, "code": 200}
    e: dict[str, Any] = events  # type: ignore[assignment]
    assert len({event["auditID"] for event in e.values()}) == len(e)  # each action its own audit event
    assert (
        Converter().convert(row(3, "approval", {"request": "ar-7f3k", "reviewer": "x"}))["auditID"]
        == (  # type: ignore[index]
            e["approved"]["auditID"]
        )
    )  # derived from the event's hash: a repeated export repeats it

    asked = e["asked"]
    assert (asked["verb"], asked["requestURI"]) == ("create", "/api/v1/requests")
    assert asked["user"] == {"username": "gh#repo:acme/app", "groups": ["ci-agents"]}
    assert asked["objectRef"] == {
        "apiGroup": "kubegate.dev",
        "apiVersion": "v1",
        "resource": "accessrequests",
        "name": "ar-7f3k",
    }
    assert asked["annotations"] == {
        "kubegate.dev/event": "access_request",
        "kubegate.dev/seq": "1",
        "kubegate.dev/hash": f"{1:064x}",
        "kubegate.dev/session": "s1",
        "kubegate.dev/connection": "prod",
        "kubegate.dev/approval": "ar-7f3k",
        "kubegate.dev/review": "requested",
        "kubegate.dev/rule": "prod-deletes",
        "kubegate.dev/mode": "wait",
        "kubegate.dev/target": "delete namespaces pr-42",
        "kubegate.dev/expires": "2023-11-14T22:28:20.500000Z",
    }

    approved = e["approved"]
    assert approved["user"] == {"username": "idp#eve", "groups": ["oncall"]}  # the reviewer, not the requester
    assert (approved["verb"], approved["requestURI"]) == ("update", "/api/v1/requests/ar-7f3k/approve")
    assert approved["objectRef"]["subresource"] == "approval"
    notes = approved["annotations"]
    assert notes["kubegate.dev/review"] == "approved" and notes["kubegate.dev/requester"] == "gh#repo:acme/app"
    assert notes["kubegate.dev/comment"] == "cleanup of a finished PR"
    assert notes["kubegate.dev/grant-expires"] == "2023-11-14T22:30:00.000000Z"
    assert e["vote"]["annotations"]["kubegate.dev/review"] == "vote"  # one of two approvals the rule needs

    denied = e["denied"]
    assert denied["requestURI"] == "/api/v1/requests/ar-9x/deny" and denied["user"]["username"] == "idp#bob"
    assert denied["annotations"]["kubegate.dev/review"] == "denied"
    assert denied["annotations"]["kubegate.dev/reason"] == "not now"
    assert (
        e["revoked"]["user"]["username"] == "idp#root" and e["revoked"]["annotations"]["kubegate.dev/reason"] == "oops"
    )
    assert e["expired"]["user"] == {"username": "system:kubegate"}
    assert e["expired"]["annotations"]["kubegate.dev/review"] == "expired"

    retention = e["retention"]
    assert (retention["verb"], retention["user"]) == ("deletecollection", {"username": "system:kubegate"})
    assert retention["objectRef"] == {"apiGroup": "kubegate.dev", "apiVersion": "v1", "resource": "events"}
    assert {k: v for k, v in retention["annotations"].items() if "retention" in k} == {
        "kubegate.dev/retention-through-seq": "41",
        "kubegate.dev/retention-last-hash": "a" * 64,
        "kubegate.dev/retention-cutoff": "2023-07-22T04:26:40.000000Z",
        "kubegate.dev/retention-events-removed": "41",
        "kubegate.dev/retention-sessions-removed": "3",
    }
