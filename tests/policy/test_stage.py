"""The policy stage: denials become a 403 Status kubectl prints; review is left for approvals; a write is
judged on the object the cluster would store (its dry run), asked only when that can change the verdict."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.kube.body import RequestBodyStage
from kubegate.kube.status import Refused
from kubegate.policy.stage import PolicyStage
from tests.policy.builders import engine, req, rule, who

RULES = engine(
    rule("pr", match={"namespaces": ["pr-*"]}),
    rule(
        "no-priv",
        "deny",
        message="privileged containers are not allowed",
        match={"verbs": ["create", "update", "patch"], "resources": ["pods"]},
        condition="has(object.spec) && object.spec.containers.exists(c, has(c.securityContext)"
        " && c.securityContext.privileged == true)",
    ),
    rule("ns-delete", "review", match={"verbs": ["delete"], "resources": ["namespaces"]}),
    rule("cm-review", "review", match={"resources": ["configmaps"], "namespaces": ["pr-*"]}),
)
BODY = RequestBodyStage()
PRIVILEGED_POD = {
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "a", "securityContext": {"privileged": True}}]},
}
PLAIN_POD = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}
PRIVILEGED = orjson.dumps(PRIVILEGED_POD)


class DryRun:
    """The cluster's answer to a dry run of the write: the object it would store."""

    def __init__(self, stored: Any = None, refusal: Refused | None = None) -> None:
        self.stored, self.refusal, self.asked = stored, refusal, 0

    async def __call__(self, flow: Flow, decision: Any) -> Any:
        self.asked += 1
        if self.refusal is not None:
            raise self.refusal
        return self.stored if self.stored is not None else flow.sent


STAGE = PolicyStage(RULES, DryRun())


def flow(method: str, path: str, body: bytes = b"", content_type: str = "application/json", query: str = "") -> Flow:
    f = Flow(
        request=None,
        connection=SimpleNamespace(name="dev"),
        method=method,
        raw_path=path,  # type: ignore[arg-type]
        query_string=query,
        headers=CIMultiDict({"Content-Type": content_type}),
        body=body,
    )
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
    assert status["message"].startswith(
        "kubegate denied this request: no policy rule allows 'bot' to get secrets 'db' in namespace 'prod'"
    )
    assert f.decision.action == "deny"


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("POST", "/api/v1/namespaces/pr-1/pods", PRIVILEGED, "application/json"),
        (
            "POST",
            "/api/v1/namespaces/pr-1/pods",
            b"spec:\n  containers:\n  - name: a\n    securityContext: {privileged: true}\n",
            "application/yaml",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/pr-1/pods/p",
            b'{"metadata": {"labels": {"a": "b"}}}',
            "application/strategic-merge-patch+json; charset=utf-8",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/pr-1/pods/p",
            b'[{"op": "copy", "from": "/x", "path": "/spec/y"}]',
            "application/json-patch+json",
        ),
        ("PATCH", "/api/v1/namespaces/pr-1/pods/p", b"metadata:\n  labels: {a: b}\n", "application/apply-patch+yaml"),
        ("POST", "/api/v1/namespaces/pr-1/pods", b"k8s\x00protobuf", "application/vnd.kubernetes.protobuf"),
    ],
)
async def test_writes_are_judged_on_the_object_the_cluster_would_store(
    method: str, path: str, body: bytes, content_type: str
) -> None:
    """Whatever the body says (an innocent-looking patch, protobuf), the verdict is on what would be stored."""
    dry_run = DryRun(PRIVILEGED_POD)
    f = flow(method, path, body, content_type)
    with pytest.raises(Refused) as exc:
        await decide(f, PolicyStage(RULES, dry_run))
    assert exc.value.code == 403 and dry_run.asked == 1
    assert exc.value.message == "kubegate denied this request by rule no-priv: privileged containers are not allowed"
    assert f.stored == PRIVILEGED_POD


async def test_unprivileged_pod_is_allowed() -> None:
    f = flow("POST", "/api/v1/namespaces/pr-1/pods", orjson.dumps(PLAIN_POD))
    await decide(f)
    assert f.decision.action == "allow" and f.object == PLAIN_POD


async def test_no_dry_run_when_no_rule_that_could_match_reads_the_object() -> None:
    dry_run = DryRun()
    f = flow("POST", "/api/v1/namespaces/pr-1/services", b'{"kind": "Service"}')
    await decide(f, PolicyStage(RULES, dry_run))
    assert f.decision.action == "allow" and dry_run.asked == 0 and f.stored is None


async def test_no_dry_run_when_the_request_is_denied_whatever_it_writes() -> None:
    dry_run = DryRun()
    with pytest.raises(Refused) as exc:
        await decide(flow("POST", "/api/v1/namespaces/prod/pods", PRIVILEGED), PolicyStage(RULES, dry_run))
    assert exc.value.message.startswith("kubegate denied this request: no policy rule allows") and dry_run.asked == 0


async def test_a_review_of_a_write_knows_what_would_be_stored() -> None:
    dry_run = DryRun({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
    f = flow("POST", "/api/v1/namespaces/pr-1/configmaps", b'{"kind": "ConfigMap"}')
    await decide(f, PolicyStage(RULES, dry_run))
    assert f.decision.action == "review" and dry_run.asked == 1 and f.stored["data"] == {"a": "1"}


async def test_the_clusters_refusal_of_the_dry_run_is_the_answer() -> None:
    refusal = Refused(422, 'Pod "p" is invalid: spec.containers: Required value', reason="Invalid")
    with pytest.raises(Refused) as exc:
        await decide(flow("POST", "/api/v1/namespaces/pr-1/pods", b"{}"), PolicyStage(RULES, DryRun(refusal=refusal)))
    assert exc.value is refusal


async def test_a_body_kubegate_cannot_read_is_judged_by_what_the_cluster_reads() -> None:
    dry_run = DryRun(PLAIN_POD)
    stage = PolicyStage(engine(rule("all")), dry_run)
    f = flow("POST", "/api/v1/namespaces/a/pods", b"\x0a\x02k8s", "application/vnd.kubernetes.protobuf")
    await decide(f, stage)
    assert f.decision.action == "allow" and dry_run.asked == 1 and f.object == PLAIN_POD


async def test_without_a_way_to_ask_the_cluster_a_write_that_needs_it_fails_closed() -> None:
    with pytest.raises(Refused) as exc:
        await decide(flow("POST", "/api/v1/namespaces/pr-1/pods", PRIVILEGED), PolicyStage(RULES))
    assert exc.value.code == 500


async def test_review_is_left_for_the_approval_stage() -> None:
    f = flow("DELETE", "/api/v1/namespaces/pr-1")
    await decide(f)
    assert f.decision.action == "review" and f.decision.reviewers.groups == ("oncall",)


async def test_missing_identity_fails_closed() -> None:
    f = flow("GET", "/api/v1/namespaces/pr-1/pods")
    f.identity = None
    with pytest.raises(Refused) as exc:
        await decide(f)
    assert exc.value.code == 500
