"""Fingerprints, ids, resource references, scopes and the approval arithmetic."""

from __future__ import annotations

import pytest

from kubegate.approvals.model import (
    ID_ALPHABET,
    ResourceRef,
    RuleReviewers,
    Scope,
    Vote,
    body_digest,
    fingerprint,
    missing_approvals,
    new_request_id,
)
from kubegate.kube.requestinfo import parse_request_info


def fp(
    method: str = "DELETE",
    path: str = "/api/v1/namespaces/pr-42",
    query: str = "",
    body: bytes = b"{}",
    user: str = "alice",
    connection: str = "dev",
) -> str:
    return fingerprint(
        user, connection, parse_request_info(method, path, query), method, path, query, body_digest(body)
    )


def test_a_fingerprint_binds_identity_connection_request_and_body() -> None:
    base = fp()
    assert base == fp()
    variants = [
        fp(path="/api/v1/namespaces/prod"),
        fp(user="bob"),
        fp(connection="prod"),
        fp(body=b'{"a":1}'),
        fp(query="dryRun=All"),
        fp(method="GET"),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_websocket_and_spdy_exec_share_a_fingerprint_but_not_a_reordered_command() -> None:
    path = "/api/v1/namespaces/dev/pods/web/exec"
    query = "command=rm&command=-rf&command=/tmp/x&stdout=true"
    assert fp("GET", path, query, b"") == fp("POST", path, query, b"")
    assert fp("GET", path, query, b"") != fp("GET", path, "command=-rf&command=rm&command=/tmp/x&stdout=true", b"")


def test_ids_are_short_and_unambiguous() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 8 and set(i) <= set(ID_ALPHABET) for i in ids)
    assert not set("01ilo") & set(ID_ALPHABET)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("pods", ResourceRef("pods")),
        ("pods/log", ResourceRef("pods", "", "log")),
        ("deployments.apps", ResourceRef("deployments", "apps")),
        ("deployments.apps/scale", ResourceRef("deployments", "apps", "scale")),
    ],
)
def test_resource_refs_parse_and_print(text: str, ref: ResourceRef) -> None:
    assert ResourceRef.parse(text) == ref and str(ref) == text


@pytest.mark.parametrize("bad", ["", "/log", "pods/log/x", "pods./log"])
def test_bad_resource_refs_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="RESOURCE"):
        ResourceRef.parse(bad)


def test_a_scope_covers_exactly_its_verbs_resources_and_namespace() -> None:
    scope = Scope("prod", ("get", "list"), (ResourceRef.parse("pods"), ResourceRef.parse("deployments.apps")), 3600)
    assert scope.covers(parse_request_info("GET", "/api/v1/namespaces/prod/pods"))
    assert scope.covers(parse_request_info("GET", "/apis/apps/v1/namespaces/prod/deployments/web"))
    assert not scope.covers(parse_request_info("GET", "/api/v1/namespaces/prod/pods/web/log"))
    assert not scope.covers(parse_request_info("DELETE", "/api/v1/namespaces/prod/pods/web"))
    assert not scope.covers(parse_request_info("GET", "/api/v1/namespaces/dev/pods"))
    assert not scope.covers(parse_request_info("GET", "/api/v1/pods"))
    assert not scope.covers(parse_request_info("GET", "/apis/other.io/v1/namespaces/prod/deployments"))
    assert Scope.from_dict(scope.as_dict()) == scope


def test_every_rule_needs_its_own_approvals() -> None:
    rules = [RuleReviewers("ns-deletion", ("oncall",), (), 2), RuleReviewers("prod", (), ("idp#sec",), 1)]
    bob = Vote("idp#bob", "bob", ("oncall",), "", 0)
    carol = Vote("idp#carol", "carol", ("oncall",), "", 0)
    sec = Vote("idp#sec", "sec", (), "", 0)
    assert missing_approvals(rules, [bob]) == [
        "rule ns-deletion needs 1 more approval(s) from oncall",
        "rule prod needs 1 more approval(s) from idp#sec",
    ]
    assert missing_approvals(rules, [bob, carol]) == ["rule prod needs 1 more approval(s) from idp#sec"]
    assert missing_approvals(rules, [bob, carol, sec]) == []


def test_reviewers_are_exact_names_never_patterns() -> None:
    rule = RuleReviewers("r", ("platform-*",), ("idp#bob",))
    assert not rule.admits("idp#eve", ("platform-oncall",))
    assert rule.admits("idp#x", ("platform-*",))
    assert rule.admits("idp#bob", ())


def test_a_reviewer_is_named_by_user_name_never_by_a_bare_subject() -> None:
    """Another issuer's subject `idp#bob` (user name `other#idp#bob`) or `bob` is not idp's bob."""
    rule = RuleReviewers("r", (), ("idp#bob",))
    assert not rule.admits("other#idp#bob", ()) and not rule.admits("other#bob", ())
    request_rule = RuleReviewers("r", (), ("bob",))
    assert not request_rule.admits("other#bob", ()) and not request_rule.admits("idp#bob", ())
