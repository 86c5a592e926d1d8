"""The example policies load, alone and together, and do what their comments say."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kubegate.policy.engine import PolicyEngine
from kubegate.policy.kubectl import parse_kubectl
from kubegate.policy.loader import read_policy_file
from tests.policy.builders import GITHUB, who

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
FILES = sorted(EXAMPLES.glob("*.yaml"))
ENGINE = PolicyEngine(policy_dirs=[EXAMPLES])
AGENT = who("repo:acme/app:ref:refs/heads/main", issuer=GITHUB, repository="acme/app")
DEV = who("alice", groups=("developers",))


def test_there_are_examples() -> None:
    assert len(FILES) >= 7


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_each_example_file_loads(path: Path) -> None:
    assert read_policy_file(path)
    assert PolicyEngine(files=[path]).status()["ok"]


@pytest.mark.parametrize(
    ("identity", "command", "action", "rule"),
    [
        (AGENT, "kubectl get pods -n pr-42", "allow", "agents-in-pr-namespaces"),
        (AGENT, "kubectl get secrets -A", "deny", None),
        (AGENT, "kubectl get pods -n prod", "deny", None),
        (AGENT, "kubectl create ns pr-43", "allow", "agents-create-pr-namespaces"),
        (AGENT, "kubectl create ns prod-2", "deny", None),
        (AGENT, "kubectl delete ns pr-42", "review", "namespace-deletion-needs-a-human"),
        (AGENT, "kubectl exec web -n pr-42 -- bash", "deny", "agents-no-exec-shells"),
        (AGENT, "kubectl exec web -n pr-42 -- ls /", "allow", "agents-in-pr-namespaces"),
        (AGENT, "kubectl run x --image=docker.io/nginx -n pr-42", "deny", "images-from-our-registry"),
        (AGENT, "kubectl run x --image=registry.example.com/nginx -n pr-42", "allow", "agents-in-pr-namespaces"),
        (DEV, "kubectl get secrets -n prod", "allow", "developers-read-secrets-masked"),
        (DEV, "kubectl delete ns prod", "review", "namespace-deletion-needs-a-human"),
        (DEV, "kubectl edit cm aws-auth -n kube-system", "deny", "no-aws-auth-edits"),
        (
            DEV,
            "kubectl create clusterrolebinding me --clusterrole=cluster-admin --user=alice",
            "deny",
            "no-cluster-role-bindings",
        ),
        (
            AGENT,
            "kubectl create rolebinding me --clusterrole=cluster-admin --user=x -n pr-42",
            "deny",
            "no-cluster-admin-role-bindings",
        ),
        (DEV, "kubectl exec web -n prod -- ls", "review", "production-interactive-needs-review"),
        (DEV, "kubectl cp prod/web:/etc/passwd ./passwd", "deny", "production-no-kubectl-cp"),
        (DEV, "kubectl debug web -n prod --image=busybox", "review", "production-interactive-needs-review"),
        (DEV, "kubectl get --raw /api/v1/nodes/n1/proxy/configz", "deny", "no-nodes-proxy"),
        (DEV, "kubectl version", "allow", "discovery"),
    ],
)
def test_example_decisions(identity, command: str, action: str, rule: str | None) -> None:
    request = parse_kubectl(shlex.split(command))
    decision = ENGINE.decide(identity, request.info, "eks-dev", request.obj)
    assert decision.action == action, decision.as_dict()
    assert decision.deciding_rules[:1] == ((rule,) if rule else ())


def test_secrets_are_read_masked() -> None:
    request = parse_kubectl(shlex.split("kubectl get secret db -n prod -o yaml"))
    decision = ENGINE.decide(DEV, request.info, "eks-dev")
    assert (decision.masks, decision.role, decision.role_scope) == (
        ("secret-values",),
        "kubegate-secret-reader",
        "cluster",
    )
