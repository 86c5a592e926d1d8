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
    for type in ("session", "chunk", "retention", "approval", "binding"):
        assert conv.convert(row(1, type, {"flow": FLOW})) is None
    anonymous = conv.convert(row(2, "request", {**REQUEST, "decision": None}, session=None))
    assert anonymous is not None
    assert_audit_event(anonymous)
    assert anonymous["user"] == {"username": "", "groups": []}


@pytest.mark.parametrize("bad", [{"stage": "Done"}, {"auditID": "x"}, {"invented": 1}, {"annotations": {"a": 1}}])
def test_the_schema_refuses_what_kubernetes_would_not_read(bad: dict[str, Any]) -> None:
    event = Converter().convert(row(1, "request", REQUEST))
    assert event is not None
    assert not VALIDATOR.is_valid({**event, **bad})
