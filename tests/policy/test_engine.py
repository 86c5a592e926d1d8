"""Decisions: one table of requests against one policy, plus the rules of combination."""

from __future__ import annotations

import pytest

from kubegate.policy.engine import PolicyEngine
from tests.policy.builders import GITHUB, engine, req, rule, who

POLICY = engine(
    rule(
        "agents-pr",
        subjects={"groups": ["ci-agents"]},
        match={"namespaces": ["pr-*"]},
        role="edit",
        mask=["secret-values"],
    ),
    rule(
        "acme-ci",
        subjects={"issuers": [GITHUB], "claims": {"repository": "acme/*", "ref": "refs/heads/main"}},
        connections=["eks-*"],
        match={"verbs": ["get", "list", "watch"], "namespaces": ["staging"]},
        role="view",
    ),
    rule(
        "ns-delete",
        "review",
        match={"verbs": ["delete"], "resources": ["namespaces"]},
        reviewers={"groups": ["platform-oncall"], "min_approvals": 2, "timeout": "10m"},
    ),
    rule(
        "aws-auth",
        "deny",
        message="aws-auth is managed in git",
        match={
            "verbs": ["create", "update", "patch", "delete"],
            "resources": ["configmaps"],
            "namespaces": ["kube-system"],
            "names": ["aws-auth"],
        },
    ),
    rule(
        "crb",
        "deny",
        message="no cluster-wide grants",
        match={
            "api_groups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterrolebindings"],
            "verbs": ["create", "update", "patch"],
        },
    ),
    rule("nodes-proxy", "deny", message="kubelet access", match={"resources": ["nodes/proxy"]}),
    rule("cp", "deny", message="no copying", match={"namespaces": ["pr-*"], "exec": {"regex": "^tar( |$)"}}),
    rule("shells", "review", match={"exec": [{"command": ["*sh"]}, {"command": ["*sh", "-c", "**"]}]}),
    rule("debug", "review", match={"resources": ["pods/ephemeralcontainers"]}),
    rule(
        "people-read",
        subjects={"users": ["alice"]},
        match={"verbs": ["get", "list", "watch"]},
        role="view",
        role_scope="cluster",
    ),
    rule("people-pods-proxy", subjects={"users": ["alice"]}, match={"resources": ["pods/proxy"]}),
    rule("discovery", match={"verbs": ["get"], "non_resource_urls": ["/version", "/api", "/apis/*"]}),
)
AGENT = who("bot", groups=("ci-agents",))
CI = who("ci", issuer=GITHUB, repository="acme/app", ref="refs/heads/main")
ALICE = who("alice")

CASES = [
    # (identity, connection, method, path, query, action, deciding rules)
    (AGENT, "dev", "GET", "/api/v1/namespaces/pr-1/pods", "", "allow", ("agents-pr",)),
    (AGENT, "dev", "DELETE", "/apis/apps/v1/namespaces/pr-7/deployments/web", "", "allow", ("agents-pr",)),
    (AGENT, "dev", "GET", "/api/v1/secrets", "", "deny", ()),  # cluster-wide list is not pr-*
    (AGENT, "dev", "GET", "/api/v1/namespaces/prod/pods", "", "deny", ()),
    (AGENT, "dev", "GET", "/api/v1/namespaces/pr-1", "", "allow", ("agents-pr",)),  # the namespace object
    (AGENT, "dev", "POST", "/api/v1/namespaces", "", "deny", ()),  # creating a namespace is cluster-scoped
    (AGENT, "dev", "DELETE", "/api/v1/namespaces/pr-1", "", "review", ("ns-delete",)),
    (AGENT, "dev", "DELETE", "/api/v1/namespaces", "", "deny", ()),  # deletecollection is not delete
    (
        AGENT,
        "dev",
        "GET",
        "/api/v1/namespaces/pr-1/pods/web/exec",
        "command=tar&command=cf&command=-&command=/",
        "deny",
        ("cp",),
    ),
    (AGENT, "dev", "POST", "/api/v1/namespaces/pr-1/pods/web/exec", "command=ls", "allow", ("agents-pr",)),
    (AGENT, "dev", "POST", "/api/v1/namespaces/pr-1/pods/web/exec", "command=/bin/bash", "review", ("shells",)),
    (
        AGENT,
        "dev",
        "POST",
        "/api/v1/namespaces/pr-1/pods/web/exec",
        "command=sh&command=-c&command=rm+-rf+/",
        "review",
        ("shells",),
    ),
    (AGENT, "dev", "PATCH", "/api/v1/namespaces/pr-1/pods/web/ephemeralcontainers", "", "review", ("debug",)),
    (CI, "eks-prod", "GET", "/api/v1/namespaces/staging/pods", "", "allow", ("acme-ci",)),
    (CI, "eks-prod", "GET", "/api/v1/namespaces/staging/pods", "watch=true", "allow", ("acme-ci",)),
    (CI, "eks-prod", "GET", "/api/v1/watch/namespaces/staging/pods", "", "allow", ("acme-ci",)),
    (CI, "eks-prod", "DELETE", "/api/v1/namespaces/staging/pods/x", "", "deny", ()),
    (CI, "kind", "GET", "/api/v1/namespaces/staging/pods", "", "deny", ()),  # connection
    (
        who("ci", issuer="https://evil.example", repository="acme/app", ref="refs/heads/main"),
        "eks-prod",
        "GET",
        "/api/v1/namespaces/staging/pods",
        "",
        "deny",
        (),
    ),  # issuer
    (
        who("ci", issuer=GITHUB, repository="acme/app", ref="refs/heads/feature"),
        "eks-prod",
        "GET",
        "/api/v1/namespaces/staging/pods",
        "",
        "deny",
        (),
    ),  # claim
    (
        who("ci", issuer=GITHUB, repository="evil/app", ref="refs/heads/main"),
        "eks-prod",
        "GET",
        "/api/v1/namespaces/staging/pods",
        "",
        "deny",
        (),
    ),
    (
        who("ci", issuer=GITHUB, ref="refs/heads/main"),
        "eks-prod",
        "GET",
        "/api/v1/namespaces/staging/pods",
        "",
        "deny",
        (),
    ),  # missing claim
    (ALICE, "dev", "GET", "/api/v1/secrets", "", "allow", ("people-read",)),
    (ALICE, "dev", "PUT", "/api/v1/namespaces/kube-system/configmaps/aws-auth", "", "deny", ("aws-auth",)),
    (ALICE, "dev", "GET", "/api/v1/namespaces/kube-system/configmaps/aws-auth", "", "allow", ("people-read",)),
    (ALICE, "dev", "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "", "deny", ("crb",)),
    (ALICE, "dev", "GET", "/api/v1/nodes/n1/proxy/metrics", "", "deny", ("nodes-proxy",)),
    (ALICE, "dev", "GET", "/api/v1/namespaces/a/pods/p/proxy/x", "", "allow", ("people-read", "people-pods-proxy")),
    (ALICE, "dev", "GET", "/api/v1/namespaces/a/services/s/proxy/x", "", "allow", ("people-read",)),
    (ALICE, "dev", "POST", "/api/v1/namespaces/a/services/s/proxy/x", "", "deny", ()),  # services/proxy != pods/proxy
    (AGENT, "dev", "GET", "/version", "", "allow", ("discovery",)),
    (AGENT, "dev", "GET", "/apis/apps", "", "allow", ("discovery",)),
    (AGENT, "dev", "POST", "/version", "", "deny", ()),
    (ALICE, "dev", "GET", "/version", "", "allow", ("people-read", "discovery")),  # no resource fields: any URL
    (who("alice@x", subject="alice"), "dev", "GET", "/api/v1/pods", "", "deny", ()),  # a bare subject never matches
]


@pytest.mark.parametrize(("identity", "connection", "method", "path", "query", "action", "deciding"), CASES)
def test_decisions(identity, connection, method, path, query, action, deciding) -> None:
    info = req(method, path, query)
    decision = POLICY.decide(identity, info, connection)
    assert (decision.action, decision.deciding_rules) == (action, deciding), decision.as_dict()
    assert POLICY.explain(identity, info, connection).matches == decision.matches


def test_every_matching_rule_counts_and_deny_beats_review_beats_allow() -> None:
    e = engine(
        rule("a", match={"namespaces": ["x"]}, mask=["m2"]),
        rule("r", "review", match={"verbs": ["delete"]}, mask=["m1"]),
        rule("d", "deny", message="no", match={"names": ["locked"]}, mask=["m2", "m3"]),
    )
    assert e.decide(ALICE, req("GET", "/api/v1/namespaces/x/pods/p"), "c").action == "allow"
    review = e.decide(ALICE, req("DELETE", "/api/v1/namespaces/x/pods/p"), "c")
    assert (review.action, review.masks) == ("review", ("m1", "m2"))
    deny = e.decide(ALICE, req("DELETE", "/api/v1/namespaces/x/pods/locked"), "c")
    assert (deny.action, deny.masks) == ("deny", ("m1", "m2", "m3"))
    assert deny.message == "kubegate denied this request by rule d: no"
    assert [m.rule for m in deny.matches] == ["a", "r", "d"]


def test_default_deny_message_names_the_request_and_next_step() -> None:
    d = POLICY.decide(AGENT, req("GET", "/api/v1/secrets"), "eks-dev")
    assert d.action == "deny" and d.matches == ()
    for part in (
        "no policy rule allows",
        "'bot'",
        "list secrets",
        "cluster-wide",
        "'eks-dev'",
        "kubegate policy explain",
    ):
        assert part in d.message
    d = POLICY.decide(AGENT, req("DELETE", "/apis/apps/v1/namespaces/prod/deployments/web"), "c")
    assert "delete deployments 'web' (API group apps) in namespace 'prod'" in d.message


def test_deny_message_names_the_first_rule_and_the_others() -> None:
    e = engine(rule("one", "deny", message="first reason"), rule("two", "deny"))
    d = e.decide(ALICE, req("GET", "/api/v1/pods"), "c")
    assert d.message == "kubegate denied this request by rule one: first reason (also denied by two)"


def test_review_combines_reviewers_and_keeps_each_rule() -> None:
    e = engine(
        rule("r1", "review", reviewers={"groups": ["sre"], "min_approvals": 1, "timeout": "10m", "mode": "async"}),
        rule("r2", "review", reviewers={"groups": ["sec"], "users": ["bob"], "min_approvals": 2, "timeout": "5m"}),
        rule("ok", role="edit"),
    )
    d = e.decide(ALICE, req("DELETE", "/api/v1/namespaces/a/pods/p"), "c")
    assert d.action == "review" and d.role == "edit"
    assert d.reviewers is not None
    assert (
        d.reviewers.groups,
        d.reviewers.users,
        d.reviewers.min_approvals,
        d.reviewers.mode,
        d.reviewers.timeout,
    ) == (("sec", "sre"), ("bob",), 2, "async", 300.0)
    assert [m.reviewers.groups for m in d.matches if m.reviewers] == [("sre",), ("sec",)]
    assert d.as_dict()["reviewers"]["timeout"] == 300.0


def test_role_comes_from_the_first_allow_rule_whose_scope_fits() -> None:
    e = engine(rule("ns-role", role="edit"), rule("cluster-role", role="view", role_scope="cluster"), rule("no-role"))
    namespaced = e.decide(ALICE, req("GET", "/api/v1/namespaces/a/pods"), "c")
    assert (namespaced.role, namespaced.role_scope) == ("edit", "namespace")
    cluster_wide = e.decide(ALICE, req("GET", "/api/v1/pods"), "c")
    assert (cluster_wide.role, cluster_wide.role_scope) == ("view", "cluster")
    assert engine(rule("plain")).decide(ALICE, req("GET", "/api/v1/pods"), "c").role is None


def test_resources_follow_rbac_subresource_rules() -> None:
    e = engine(
        rule("bare", match={"resources": ["pods"]}),
        rule("all-subs", match={"resources": ["deployments/*"]}),
        rule("scale-anything", match={"resources": ["*/scale"]}),
        rule("logs", match={"resources": ["pods", "services"], "subresources": ["log", ""]}),
    )

    def rules_for(method: str, path: str) -> tuple[str, ...]:
        return tuple(m.rule for m in e.decide(ALICE, req(method, path), "c").matches)

    assert rules_for("GET", "/api/v1/namespaces/a/pods/p") == ("bare", "logs")
    assert rules_for("POST", "/api/v1/namespaces/a/pods/p/exec") == ()
    assert rules_for("GET", "/api/v1/namespaces/a/pods/p/log") == ("logs",)
    assert rules_for("GET", "/apis/apps/v1/namespaces/a/deployments/d") == ()
    assert rules_for("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale") == ("all-subs", "scale-anything")
    assert rules_for("GET", "/api/v1/namespaces/a/services/s") == ("logs",)


def test_namespace_globs_never_match_cluster_wide_but_empty_string_does() -> None:
    e = engine(rule("any-ns", match={"namespaces": ["*"]}), rule("cluster", match={"namespaces": [""]}))
    assert e.decide(ALICE, req("GET", "/api/v1/namespaces/a/pods"), "c").deciding_rules == ("any-ns",)
    assert e.decide(ALICE, req("GET", "/api/v1/pods"), "c").deciding_rules == ("cluster",)
    assert e.decide(ALICE, req("GET", "/api/v1/nodes/n"), "c").deciding_rules == ("cluster",)


def test_names_match_the_body_name_of_a_create() -> None:
    e = engine(rule("aws-auth", "deny", match={"names": ["aws-auth"]}), rule("ok"))
    create = req("POST", "/api/v1/namespaces/kube-system/configmaps")
    assert e.decide(ALICE, create, "c", {"metadata": {"name": "aws-auth"}}).action == "deny"
    assert e.decide(ALICE, create, "c", {"metadata": {"name": "other"}}).action == "allow"
    assert e.decide(ALICE, create, "c", ["not", "an", "object"]).action == "allow"
    assert e.needs_object


def test_exec_argv_globs_are_exact_length_unless_double_star() -> None:
    e = engine(
        rule("sh-c", match={"exec": {"command": ["sh", "-c", "*"]}}),
        rule("tar-any", match={"exec": {"command": ["tar", "**"]}}),
    )

    def rules_for(*argv: str) -> tuple[str, ...]:
        query = "&".join(f"command={a}" for a in argv)
        return e.decide(ALICE, req("POST", "/api/v1/namespaces/a/pods/p/exec", query), "c").deciding_rules

    assert rules_for("sh", "-c", "id") == ("sh-c",)
    assert rules_for("sh", "-c") == ()
    assert rules_for("sh", "-c", "id", "extra") == ()
    assert rules_for("tar") == ("tar-any",)
    assert rules_for("tar", "cf", "-", "/x") == ("tar-any",)
    assert e.decide(ALICE, req("POST", "/api/v1/namespaces/a/pods/p/attach"), "c").action == "deny"


PRIVILEGED = (
    "object.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.privileged)"
    " && c.securityContext.privileged)"
)
REGISTRY = '!object.spec.containers.all(c, c.image.startsWith("registry.example.com/"))'


def pod(image: str = "registry.example.com/app:1", privileged: bool | None = None) -> dict:
    container: dict = {"name": "app", "image": image}
    if privileged is not None:
        container["securityContext"] = {"privileged": privileged}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}}


@pytest.mark.parametrize(
    ("obj", "action", "deciding"),
    [
        (pod(), "allow", ("base",)),
        (pod(privileged=False), "allow", ("base",)),
        (pod(privileged=True), "deny", ("no-privileged",)),
        (pod(image="docker.io/evil:1"), "deny", ("our-registry",)),
        (pod(image="docker.io/evil:1", privileged=True), "deny", ("no-privileged", "our-registry")),
        ({"kind": "Pod"}, "deny", ("no-privileged", "our-registry")),  # cannot evaluate: deny rules match
        (None, "deny", ("no-privileged", "our-registry")),
    ],
)
def test_cel_conditions_on_the_object(obj, action, deciding) -> None:
    e = engine(
        rule("base"),
        rule("no-privileged", "deny", match={"verbs": ["create"], "resources": ["pods"]}, condition=PRIVILEGED),
        rule("our-registry", "deny", match={"verbs": ["create"], "resources": ["pods"]}, condition=REGISTRY),
    )
    d = e.decide(ALICE, req("POST", "/api/v1/namespaces/a/pods"), "c", obj)
    assert (d.action, d.deciding_rules) == (action, deciding)


def test_cel_errors_fail_closed_for_allow_and_are_explained() -> None:
    e = engine(
        rule("allow-if", condition="object.metadata.labels.team == 'a'"),
        rule("review-if", "review", condition="object.metadata.labels.team == 'b'"),
    )
    labelled = {"metadata": {"labels": {"team": "a"}}}
    d = e.decide(ALICE, req("POST", "/api/v1/namespaces/a/pods"), "c", labelled)
    assert d.deciding_rules == ("allow-if",)
    d = e.explain(ALICE, req("POST", "/api/v1/namespaces/a/pods"), "c", {"metadata": {}})
    assert d.deciding_rules == ("review-if",)
    assert "could not be evaluated" in d.matches[0].why[-1] and "fail closed" in d.matches[0].why[-1]
    assert "could not be evaluated" in d.misses[0].why_not


def test_cel_sees_identity_and_request() -> None:
    e = engine(
        rule(
            "main-only",
            condition='identity.claims.ref == "refs/heads/main" && request.verb == "get"'
            ' && request.connection == "prod" && request.namespace.startsWith("a")',
        )
    )
    ok = who("ci", ref="refs/heads/main")
    assert e.decide(ok, req("GET", "/api/v1/namespaces/ab/pods/p"), "prod").action == "allow"
    assert e.decide(ok, req("GET", "/api/v1/namespaces/b/pods/p"), "prod").action == "deny"
    assert e.decide(who("ci", ref="refs/heads/x"), req("GET", "/api/v1/namespaces/ab/pods/p"), "prod").action == "deny"


def test_explain_lists_each_miss_with_its_first_failed_check() -> None:
    d = POLICY.explain(AGENT, req("GET", "/api/v1/namespaces/kube-system/secrets/s"), "dev")
    misses = {m.rule: m.why_not for m in d.misses}
    assert misses["agents-pr"] == "namespace 'kube-system' is not in ['pr-*']"
    assert misses["discovery"].startswith("the rule is about non-resource URLs")
    assert set(misses) | {m.rule for m in d.matches} == {r.name for r in POLICY.rules}
    assert "misses" in d.as_dict()


def test_index_gives_the_same_answer_as_scanning_all_rules() -> None:
    e = PolicyEngine.from_rules(
        [
            rule(f"r{i}", match={"verbs": [v], "resources": [r]})
            for i, (v, r) in enumerate([("get", "pods"), ("list", "pods"), ("get", "*"), ("get", "po*")])
        ]
        + [rule("any", "review")]
    )
    for method, path in [
        ("GET", "/api/v1/namespaces/a/pods/p"),
        ("GET", "/api/v1/namespaces/a/pods"),
        ("GET", "/api/v1/namespaces/a/pods/p/log"),
        ("GET", "/version"),
    ]:
        info = req(method, path)
        assert e.decide(ALICE, info, "c").matches == e.explain(ALICE, info, "c").matches
