"""The policy stage: denials become a 403 Status kubectl prints; review is left for approvals."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from kubegate.kube.body import RequestBodyStage
from kubegate.kube.status import Refused
from kubegate.policy.stage import PolicyStage
from kubegate.proxy.flow import Flow
from tests.policy.builders import engine, req, rule, who

STAGE = PolicyStage(engine(
    rule("pr", match={"namespaces": ["pr-*"]}),
    rule("no-priv", "deny", message="privileged containers are not allowed",
         match={"verbs": ["create", "update", "patch"], "resources": ["pods"]},
         condition="has(object.spec) && object.spec.containers.exists(c, has(c.securityContext)"
                   " && c.securityContext.privileged == true)"),
    rule("ns-delete", "review", match={"verbs": ["delete"], "resources": ["namespaces"]}),
))
BODY = RequestBodyStage()
PRIVILEGED = b'{"spec": {"containers": [{"name": "a", "securityContext": {"privileged": true}}]}}'


def flow(method: str, path: str, body: bytes = b"", content_type: str = "application/json",
         query: str = "") -> Flow:
    f = Flow(request=None, connection=SimpleNamespace(name="dev"), method=method, raw_path=path,  # type: ignore[arg-type]
             query_string=query, headers=CIMultiDict({"Content-Type": content_type}), body=body)
    f.identity, f.info = who("bot"), req(method, path, query)
    return f


async def decide(f: Flow, stage: PolicyStage = STAGE) -> None:
    """As the pipeline runs them: the body is read first, then the policy decides."""
    await BODY.on_request(f)
    await stage.on_request(f)


async def test_allow_sets_the_decision() -> None:
    f = flow("GET", "/api/v1/namespaces/pr-1/pods")
    await decide(f)
    assert f.decision.action == "allow"


async def test_default_deny_is_a_forbidden_status() -> None:
    f = flow("GET", "/api/v1/namespaces/prod/secrets/db")
    with pytest.raises(Refused) as exc:
        await decide(f)
    status = exc.value.status()
    assert (status["code"], status["reason"]) == (403, "Forbidden")
    assert status["details"] == {"kind": "secrets", "name": "db"}
    assert status["message"].startswith("no policy rule allows 'bot' to get secrets 'db' in namespace 'prod'")
    assert f.decision.action == "deny"


@pytest.mark.parametrize(("method", "path", "body", "content_type"), [
    ("POST", "/api/v1/namespaces/pr-1/pods", PRIVILEGED, "application/json"),
    ("POST", "/api/v1/namespaces/pr-1/pods",
     b"spec:\n  containers:\n  - name: a\n    securityContext: {privileged: true}\n", "application/yaml"),
    ("PATCH", "/api/v1/namespaces/pr-1/pods/p", PRIVILEGED, "application/strategic-merge-patch+json; charset=utf-8"),
    ("PATCH", "/api/v1/namespaces/pr-1/pods/p",
     b"spec:\n  containers:\n  - {name: a, securityContext: {privileged: true}}\n", "application/apply-patch+yaml"),
])
async def test_deny_on_the_parsed_object_names_rule_and_message(method: str, path: str, body: bytes,
                                                                content_type: str) -> None:
    with pytest.raises(Refused) as exc:
        await decide(flow(method, path, body, content_type))
    assert exc.value.code == 403
    assert exc.value.message == "denied by rule no-priv: privileged containers are not allowed"


async def test_unprivileged_pod_is_allowed() -> None:
    f = flow("POST", "/api/v1/namespaces/pr-1/pods", b'{"spec": {"containers": [{"name": "a"}]}}')
    await decide(f)
    assert f.decision.action == "allow"


async def test_review_is_left_for_the_approval_stage() -> None:
    f = flow("DELETE", "/api/v1/namespaces/pr-1")
    await decide(f)
    assert f.decision.action == "review" and f.decision.reviewers.groups == ("oncall",)


@pytest.mark.parametrize(("body", "content_type", "code"), [
    (b"\x0a\x02k8s", "application/vnd.kubernetes.protobuf", 415),
    (b"{not json", "application/json", 415),
])
async def test_bodies_policy_cannot_read_are_refused(body: bytes, content_type: str, code: int) -> None:
    with pytest.raises(Refused) as exc:
        await decide(flow("POST", "/api/v1/namespaces/pr-1/pods", body, content_type))
    assert exc.value.code == code and exc.value.reason == "UnsupportedMediaType"


async def test_bodies_are_not_parsed_when_no_rule_reads_them() -> None:
    stage = PolicyStage(engine(rule("all")))
    f = flow("POST", "/api/v1/namespaces/a/pods", b"\x0a\x02k8s", "application/vnd.kubernetes.protobuf")
    await decide(f, stage)
    assert f.decision.action == "allow"


async def test_missing_identity_fails_closed() -> None:
    f = flow("GET", "/api/v1/namespaces/pr-1/pods")
    f.identity = None
    with pytest.raises(Refused) as exc:
        await decide(f)
    assert exc.value.code == 500
