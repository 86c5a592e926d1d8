"""What the cluster is told about the caller."""

from __future__ import annotations

import pytest

from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.upstream.impersonation import impersonation_headers


def test_user_groups_and_extras_without_system_groups() -> None:
    ident = Identity(
        issuer="https://token.actions.githubusercontent.com",
        subject="repo:acme/shop:ref:main",
        username="gh:repo:acme/shop:ref:main",
        groups=("ci-agents", "system:masters", "system:nodes"),
        claims={"repository": "acme/shop", "run_id": "42", "Actor": "zoë"},
    )
    headers = impersonation_headers(ident)
    assert ("Impersonate-User", "gh:repo:acme/shop:ref:main") in headers
    assert [v for k, v in headers if k == "Impersonate-Group"] == ["ci-agents"]
    extras = {k: v for k, v in headers if k.startswith("Impersonate-Extra-")}
    assert extras == {
        "Impersonate-Extra-kubegate.dev%2Fissuer": "https://token.actions.githubusercontent.com",
        "Impersonate-Extra-kubegate.dev%2Frepository": "acme/shop",
        "Impersonate-Extra-kubegate.dev%2Frun_id": "42",
        "Impersonate-Extra-kubegate.dev%2Factor": "zo%C3%AB",
    }


def test_groups_can_be_withheld_per_connection() -> None:
    ident = Identity(issuer="i", subject="s", username="u", groups=("a",))
    assert not [k for k, _ in impersonation_headers(ident, pass_groups=False) if k == "Impersonate-Group"]


def test_a_system_user_is_never_impersonated() -> None:
    ident = Identity(issuer="https://idp", subject="system:admin", username="system:admin")
    with pytest.raises(Refused) as refused:
        impersonation_headers(ident)
    assert (
        refused.value.code == 403
        and "kubegate refused to act as Kubernetes user 'system:admin'" in refused.value.message
    )
