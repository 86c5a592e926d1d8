"""Policy and reviewer `users:` are issuer-qualified Kubernetes user names: a bare subject from any
trusted issuer never matches a rule written for another issuer."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubegate.config import Config, load_config, policy_engine
from kubegate.configbase import ConfigError
from kubegate.identity.config import IdentityConfig, IssuerConfig
from kubegate.policy.loader import load_rules
from kubegate.policy.subjects import qualify_users
from tests.policy.builders import req, rule, who

GITHUB, OKTA = "https://token.actions.githubusercontent.com", "https://acme.okta.com"


def test_with_one_issuer_a_bare_subject_means_that_issuers_user() -> None:
    r = rule("r", "review", subjects={"users": ["bob", "github:carol", "ci-*"]}, reviewers={"users": ["dave"]})
    qualified, errors = qualify_users(r, ["github:"])
    assert errors == []
    assert qualified.subjects.users == ["github:bob", "github:carol", "github:ci-*"]
    assert qualified.reviewers is not None and qualified.reviewers.users == ["github:dave"]


def test_with_several_issuers_a_bare_subject_is_an_error_naming_the_field(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "- {name: ok, action: allow, subjects: {users: ['okta:bob']}}\n"
        "- {name: r, action: review, subjects: {users: ['github:x', bob]}, reviewers: {users: [dave]}}\n"
    )
    with pytest.raises(ConfigError) as exc:
        load_rules([], [policy], user_prefixes=["github:", "okta:"])
    assert str(exc.value).splitlines() == [
        f"{policy}: policies[1].subjects.users[1]: 'bob' names no issuer, and a bare subject would match the same "
        "subject from any trusted issuer: write the Kubernetes user name, 'github:bob' or 'okta:bob'",
        f"{policy}: policies[1].reviewers.users[0]: 'dave' names no issuer, and a bare subject would match the same "
        "subject from any trusted issuer: write the Kubernetes user name, 'github:dave' or 'okta:dave'",
    ]


def test_without_issuers_the_rules_are_checked_as_written() -> None:
    r = rule("r", subjects={"users": ["bob"]})
    assert qualify_users(r, []) == (r, [])


def test_a_subject_from_another_issuer_never_matches() -> None:
    config = Config(
        identity=IdentityConfig(
            issuers=[
                IssuerConfig(url=GITHUB, audience="k", username_prefix="github:"),
                IssuerConfig(url=OKTA, audience="k"),
            ]
        ),
        policies=[
            rule("okta-bob-reads", subjects={"users": [f"{OKTA}#bob"]}),
            rule("gh-bot-reads", subjects={"users": ["github:repo:acme/*"]}),
        ],
    )
    engine = policy_engine(config)
    info = req("GET", "/api/v1/pods")
    assert engine.decide(who(f"{OKTA}#bob", issuer=OKTA, subject="bob"), info, "dev").action == "allow"
    # GitHub's subject `bob`, and a subject spelled like Okta's user name, are other people.
    assert engine.decide(who("github:bob", issuer=GITHUB, subject="bob"), info, "dev").action == "deny"
    assert engine.decide(who(f"github:{OKTA}#bob", issuer=GITHUB, subject=f"{OKTA}#bob"), info, "dev").action == "deny"
    assert (
        engine.decide(who("github:repo:acme/app", issuer=GITHUB, subject="repo:acme/app"), info, "dev").action
        == "allow"
    )
    assert (
        engine.decide(
            who(f"{OKTA}#github:repo:acme/app", issuer=OKTA, subject="github:repo:acme/app"), info, "dev"
        ).action
        == "deny"
    )


def test_a_config_reload_qualifies_with_the_issuers_it_names(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(
        f"identity: {{issuers: [{{url: '{GITHUB}', audience: k, username_prefix: 'github:'}}]}}\n"
        "policies: [{name: bob-reads, action: allow, subjects: {users: [bob]}}]\n"
    )
    engine = policy_engine(load_config(path), path)
    assert engine.rules[0].subjects.users == ["github:bob"]
    path.write_text(
        f"identity: {{issuers: [{{url: '{GITHUB}', audience: k, username_prefix: 'github:'}}, "
        f"{{url: '{OKTA}', audience: k}}]}}\n"
        "policies: [{name: bob-reads, action: allow, subjects: {users: [bob]}}]\n"
    )
    assert engine.reload()
    assert "policies[0].subjects.users[0]: 'bob' names no issuer" in engine.status()["error"]
    assert engine.rules[0].subjects.users == ["github:bob"]  # the previous policy stays
