"""How a connection carries the caller to the cluster in each identity mode, and the settings that choose it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.sandbox.envtest import write_service_account_volume
from kubegate.tls import ensure_serving_cert
from kubegate.upstream import trust
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from kubegate.upstream.credentials import CredentialError, Credentials
from kubegate.upstream.eks import role_session_name

ALICE = Identity(
    issuer="https://idp",
    subject="alice",
    username="idp:alice",
    groups=("dev", "system:masters"),
    claims={"repository": "acme/shop"},
)
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
    conn = Connection(
        ConnectionConfig(name="dev", server="https://127.0.0.1:9", auth=EKS, identity_mode="eks-session-name")
    )
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
    assert ConnectionConfig(name="dev", server="https://x", auth={"token": "t"}).binding_ttl == 3600
    assert ConnectionConfig(name="dev", server="https://x", auth={"token": "t"}, binding_ttl="15m").binding_ttl == 900
    for bad in ("0s", "soon"):
        with pytest.raises(ValidationError, match="binding_ttl"):
            ConnectionConfig(name="dev", server="https://x", auth={"token": "t"}, binding_ttl=bad)


def test_eks_without_its_extra_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubegate.upstream.eks", None)  # as if botocore were not installed
    with pytest.raises(CredentialError, match=r"pip install 'kubegate\[eks\]'"):
        Connection(ConnectionConfig(name="dev", server="https://127.0.0.1:9", auth=EKS))


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    """A service-account volume with a cluster CA (the sandbox's own), as the kubelet mounts it."""
    certs = ensure_serving_cert(tmp_path / "tls", ["127.0.0.1"])
    return write_service_account_volume(tmp_path / "serviceaccount", "t0", certs.ca, "kubegate")


@pytest.mark.parametrize(
    ("host", "server"), [("10.0.0.1", "https://10.0.0.1:443"), ("fd00::1", "https://[fd00::1]:443")]
)
async def test_in_cluster_finds_the_api_server_in_the_pods_environment(
    service_account: Path, monkeypatch: pytest.MonkeyPatch, host: str, server: str
) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    conn = Connection(ConnectionConfig(name="here", auth={"in_cluster": {"directory": service_account}}))
    try:
        assert conn.server == server
        assert await conn.credentials.authorization(None) == "Bearer t0"
    finally:
        await conn.close()
    explicit = Connection(
        ConnectionConfig(
            name="here", server="https://api.internal:6443", auth={"in_cluster": {"directory": service_account}}
        )
    )
    assert explicit.server == "https://api.internal:6443"
    await explicit.close()


@pytest.mark.parametrize(("missing", "message"), [("environment", "KUBERNETES_SERVICE_HOST"), ("ca", "no cluster CA")])
def test_in_cluster_outside_a_pod_says_what_is_missing(
    service_account: Path, monkeypatch: pytest.MonkeyPatch, missing: str, message: str
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    if missing == "ca":
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
        (service_account / "..data" / "ca.crt").unlink()
    with pytest.raises(CredentialError, match=message):
        Connection(ConnectionConfig(name="here", auth={"in_cluster": {"directory": service_account}}))


async def _who(conn: Connection, identity: Identity | None) -> dict[str, Any]:
    status, review = await conn.client.call(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        identity=identity,
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert status == 201, review
    user: dict[str, Any] = review["status"]["userInfo"]
    return user


async def test_in_cluster_credentials_on_the_real_cluster_follow_token_rotation(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubegate's ServiceAccount, bound to deploy/rbac.yaml's ClusterRole, with TokenRequest-issued tokens in a
    kubelet-style volume: it impersonates the caller, and a rotated token is used from the next request."""
    control = world.control
    namespace = world.namespace("incluster")
    control.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kubegate", "namespace": namespace}}
    )
    control.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"kubegate-{namespace}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubegate"},
            "subjects": [{"kind": "ServiceAccount", "name": "kubegate", "namespace": namespace}],
        }
    )
    volume = write_service_account_volume(
        tmp_path / "serviceaccount", control.service_account_token(namespace, "kubegate"), control.ca_file, namespace
    )
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(control.port))
    conn = Connection(ConnectionConfig(name="envtest", auth={"in_cluster": {"directory": volume}}))
    try:
        itself = await _who(conn, None)
        assert itself["username"] == f"system:serviceaccount:{namespace}:kubegate"
        assert (await _who(conn, ALICE))["username"] == "idp:alice"
        write_service_account_volume(
            volume, control.service_account_token(namespace, "kubegate"), control.ca_file, namespace
        )
        rotated = await _who(conn, None)
    finally:
        await conn.close()
    assert rotated["username"] == itself["username"]
    credential = "authentication.kubernetes.io/credential-id"
    assert itself["extra"][credential] != rotated["extra"][credential], "the rotated token was not used"


async def test_in_cluster_connection_follows_the_cluster_ca_as_the_kubelet_rotates_it(
    world: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ca.crt rewritten in place in the service-account volume: the CA is read again after client-go's period
    (not before), new connections trust the CA the file holds, and a CA taken out of it is trusted no more."""
    control = world.control
    namespace = world.namespace("incluster-ca")
    control.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kubegate", "namespace": namespace}}
    )
    token = control.service_account_token(namespace, "kubegate")
    other_ca = ensure_serving_cert(tmp_path / "other", ["127.0.0.1"]).ca
    volume = write_service_account_volume(tmp_path / "serviceaccount", token, other_ca, namespace)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(control.port))
    conn = Connection(ConnectionConfig(name="envtest", auth={"in_cluster": {"directory": volume}}))
    try:
        with pytest.raises(Refused) as refused:
            await _who(conn, None)
        assert refused.value.code == 502
        write_service_account_volume(volume, token, control.ca_file, namespace)
        with pytest.raises(Refused):
            await _who(conn, None)  # within the period: the file is not read again
        monkeypatch.setattr(trust, "CA_RECHECK_SECONDS", 0.0)
        assert (await _who(conn, None))["username"] == f"system:serviceaccount:{namespace}:kubegate"
        write_service_account_volume(volume, token, other_ca, namespace)
        with pytest.raises(Refused) as refused:
            await _who(conn, None)
        assert refused.value.code == 502
    finally:
        await conn.close()
