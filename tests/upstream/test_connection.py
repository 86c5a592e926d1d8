"""How a connection carries the caller to the cluster in each identity mode, and the settings that choose it."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from kubegate.config import ConnectionConfig
from kubegate.identity.model import Identity
from kubegate.upstream.connection import Connection
from kubegate.upstream.credentials import CredentialError, Credentials
from kubegate.upstream.eks import role_session_name

ALICE = Identity(issuer="https://idp", subject="alice", username="idp:alice", groups=("dev", "system:masters"),
                 claims={"repository": "acme/shop"})
EKS = {"eks": {"cluster": "dev", "region": "eu-west-1", "role_arn": "arn:aws:iam::111122223333:role/kubegate"}}


class PerSession(Credentials):
    """A token per caller, as EKSCredentials gives in eks-session-name mode (without AWS)."""

    async def authorization(self, identity: Identity | None) -> str:
        return "Bearer own" if identity is None else f"Bearer for-{identity.subject}"


async def test_impersonation_mode_sends_kubegates_token_and_impersonates_the_caller() -> None:
    conn = Connection(ConnectionConfig(name="dev", server="https://127.0.0.1:9", auth={"token": "own"}))
    try:
        headers = await conn.upstream_identity_headers(ALICE)
    finally:
        await conn.close()
    assert ("Authorization", "Bearer own") in headers and ("Impersonate-User", "idp:alice") in headers
    assert ("Impersonate-Group", "system:masters") not in headers
    assert conn.kubernetes_user(ALICE) == "idp:alice"


async def test_eks_session_name_mode_sends_the_callers_session_and_no_impersonation() -> None:
    conn = Connection(ConnectionConfig(name="dev", server="https://127.0.0.1:9", auth=EKS,
                                       identity_mode="eks-session-name"))
    conn.credentials = PerSession()
    try:
        headers = await conn.upstream_identity_headers(ALICE)
    finally:
        await conn.close()
    assert headers == [("Authorization", "Bearer for-alice")]
    assert conn.kubernetes_user(ALICE) == f"kubegate:{role_session_name(ALICE)}"


@pytest.mark.parametrize("auth", [{"token": "t"}, {"eks": {"cluster": "dev", "region": "eu-west-1"}}])
def test_eks_session_name_mode_needs_an_eks_role(auth: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=r"identity_mode eks-session-name needs auth\.eks with a role_arn"):
        ConnectionConfig(name="dev", server="https://x", auth=auth, identity_mode="eks-session-name")


def test_binding_ttl_defaults_to_an_hour_and_takes_durations() -> None:
    assert ConnectionConfig(name="dev", server="https://x", auth={"token": "t"}).binding_ttl_seconds == 3600
    assert ConnectionConfig(name="dev", server="https://x", auth={"token": "t"},
                            binding_ttl="15m").binding_ttl_seconds == 900
    for bad in ("0s", "soon"):
        with pytest.raises(ValidationError, match="binding_ttl"):
            ConnectionConfig(name="dev", server="https://x", auth={"token": "t"}, binding_ttl=bad)


def test_eks_without_its_extra_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubegate.upstream.eks", None)  # as if botocore were not installed
    with pytest.raises(CredentialError, match=r"pip install 'kubegate\[eks\]'"):
        Connection(ConnectionConfig(name="dev", server="https://127.0.0.1:9", auth=EKS))
