"""Rule validation: every mistake is caught at load time and names its field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubegate.configbase import format_validation_error
from kubegate.policy.model import PolicyFile


def error_of(rule: dict) -> str:
    with pytest.raises(ValidationError) as exc:
        PolicyFile.model_validate({"policies": [{"name": "ok", "action": "allow"}, rule]})
    return format_validation_error("p.yaml", exc.value)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"name": "r", "action": "allow", "match": {"verbs": ["get", "delet"]}},
            "p.yaml: policies[1].match.verbs: 'delet' is not a request verb",
        ),
        (
            {"name": "r", "action": "allow", "match": {"verbs": ["exec"]}},
            "exec, attach and portforward are verb create",
        ),
        (
            {"name": "r", "action": "allow", "match": {"resources": ["pods/exec/x"]}},
            "p.yaml: policies[1].match.resources: 'pods/exec/x' is not RESOURCE or RESOURCE/SUBRESOURCE",
        ),
        (
            {"name": "r", "action": "allow", "match": {"resources": ["pods", "pod"]}},
            "p.yaml: policies[1].match.resources: 'pod' never matches a request: resources are the API's lower-case "
            "plural names (kubectl api-resources, NAME column); write 'pods'",
        ),
        ({"name": "r", "action": "allow", "match": {"resources": ["deploy/scale"]}}, "write 'deployments/scale'"),
        ({"name": "r", "action": "allow", "match": {"resources": ["Widgets"]}}, "write 'widgets'"),
        (
            {"name": "r", "action": "allow", "match": {"exec": {"command": ["sh"], "regex": "^sh"}}},
            "p.yaml: policies[1].match.exec[0]: give exactly one of command (argv globs) or regex",
        ),
        (
            {"name": "r", "action": "allow", "match": {"exec": {"regex": "(unclosed"}}},
            "p.yaml: policies[1].match.exec[0].regex: not a valid regular expression",
        ),
        (
            {"name": "r", "action": "allow", "match": {"exec": {"command": ["**", "x"]}}},
            "'**' (any remaining arguments) may only be the last element",
        ),
        (
            {"name": "r", "action": "allow", "condition": "object.spec.containers.exists(c,"},
            "p.yaml: policies[1].condition: not a valid CEL expression",
        ),
        ({"name": "r", "action": "review"}, "p.yaml: policies[1]: a review rule needs reviewers"),
        (
            {"name": "r", "action": "review", "reviewers": {"min_approvals": 1}},
            "policies[1].reviewers: name at least one reviewer group or user",
        ),
        (
            {"name": "r", "action": "review", "reviewers": {"groups": ["g"], "timeout": "soon"}},
            "policies[1].reviewers.timeout: 'soon' is not a duration",
        ),
        ({"name": "r", "action": "deny", "role": "edit"}, "role and role_scope only apply to allow and review rules"),
        ({"name": "r", "action": "allow", "role_scope": "cluster"}, "role_scope needs a role"),
        ({"name": "r", "action": "allow", "reviewers": {"groups": ["g"]}}, "reviewers only apply to action review"),
        ({"name": "r", "action": "permit"}, "policies[1].action: Input should be 'allow', 'deny' or 'review'"),
        ({"name": "r", "action": "allow", "match": {"verb": ["get"]}}, "policies[1].match.verb: Extra inputs"),
        ({"name": "bad name", "action": "allow"}, "policies[1].name: String should match pattern"),
        (
            {"name": "r", "action": "allow", "match": {"non_resource_urls": ["/version"], "namespaces": ["a"]}},
            "non_resource_urls cannot be combined with namespaces",
        ),
        ({"name": "r", "action": "allow", "match": {"non_resource_urls": ["version"]}}, "must be a path starting with"),
        ({"name": "r", "action": "allow", "mask": ["Secret Values"]}, "policies[1].mask[0]: String should match"),
    ],
)
def test_invalid_rules_name_the_field(rule: dict, expected: str) -> None:
    assert expected in error_of(rule)


def test_single_values_read_as_lists_and_defaults() -> None:
    f = PolicyFile.model_validate(
        {
            "policies": [
                {
                    "name": "r",
                    "action": "review",
                    "connections": "dev",
                    "subjects": {"groups": "sre", "claims": {"repository": "acme/*"}},
                    "match": {"verbs": "get", "namespaces": "prod", "exec": {"regex": "^tar"}},
                    "reviewers": {"groups": "oncall"},
                }
            ]
        }
    )
    r = f.policies[0]
    assert r.connections == ["dev"] and r.subjects.groups == ["sre"]
    assert r.subjects.claims == {"repository": ["acme/*"]}
    assert r.match.verbs == ["get"] and len(r.match.exec) == 1
    assert r.reviewers is not None and r.reviewers.timeout == 900 and r.reviewers.mode == "wait"
    assert r.scope == "namespace"


def test_plural_core_and_custom_resources_load() -> None:
    PolicyFile.model_validate(
        {
            "policies": [
                {
                    "name": "r",
                    "action": "allow",
                    "match": {
                        "resources": ["pods", "pods/log", "deployments/scale", "endpoints", "widgets", "*", "pods/*"]
                    },
                }
            ]
        }
    )
