"""kubeconfig contexts as upstream credentials: each kind of user, TLS trust, and errors that name the field;
then exec plugins and rotating token files used for real against the sandbox cluster."""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubegate.sandbox.cluster import SandboxCluster
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from kubegate.upstream.credentials import ClientCertificate, ExecPlugin, StaticToken, TokenFile
from kubegate.upstream.kubeconfig import KubeconfigError, load_kubeconfig


def kubeconfig(
    path: Path,
    users: dict[str, dict[str, Any]],
    *,
    cluster: dict[str, Any] | None = None,
    current: str | None = "first",
) -> Path:
    """One cluster and one context per user (context name = user name)."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://api.example:6443/"}}],
        "users": [{"name": name, "user": user} for name, user in users.items()],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": name}} for name in users],
    }
    if current:
        doc["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_current_context_or_the_named_one_is_used(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "kc", {"first": {"token": "one"}, "second": {"token": "two"}})
    current = load_kubeconfig(path)
    assert current.server == "https://api.example:6443"
    assert isinstance(current.credentials, StaticToken)
    second = load_kubeconfig(path, "second")
    assert isinstance(second.credentials, StaticToken) and second.credentials is not current.credentials


def test_token_files_and_certificates_are_found_next_to_the_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "conf" / "kc",
        {
            "first": {"tokenFile": "secrets/token"},
            "cert": {"client-certificate": "pki/client.crt", "client-key": "/abs/client.key"},
        },
        cluster={"server": "https://api", "certificate-authority": "pki/ca.crt"},
    )
    token = load_kubeconfig(path)
    assert isinstance(token.credentials, TokenFile)
    assert token.ca_file == tmp_path / "conf" / "pki" / "ca.crt" and token.ca_data is None
    cert = load_kubeconfig(path, "cert")
    assert isinstance(cert.credentials, ClientCertificate)
    assert cert.credentials.client_cert() == (tmp_path / "conf" / "pki" / "client.crt", Path("/abs/client.key"))


def test_embedded_certificate_data_stays_in_memory(tmp_path: Path) -> None:
    ca, crt, key = b"-----CA-----\n", b"-----CERT-----\n", b"-----KEY-----\n"
    b64 = {name: base64.b64encode(value).decode() for name, value in (("ca", ca), ("crt", crt), ("key", key))}
    path = kubeconfig(
        tmp_path / "kc",
        {"first": {"client-certificate-data": b64["crt"], "client-key-data": b64["key"]}},
        cluster={"server": "https://api", "certificate-authority-data": b64["ca"], "insecure-skip-tls-verify": True},
    )
    target = load_kubeconfig(path)
    assert target.ca_data == ca and target.insecure is True
    assert target.credentials.client_cert() == (crt, key)


def test_an_exec_plugin_user_becomes_an_exec_credential_source(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc",
        {
            "first": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "aws",
                    "args": ["eks", "get-token", "--cluster-name", "dev"],
                    "env": [{"name": "AWS_PROFILE", "value": "ci"}],
                }
            }
        },
    )
    assert isinstance(load_kubeconfig(path).credentials, ExecPlugin)


@pytest.mark.parametrize(
    ("users", "cluster", "current", "context", "message"),
    [
        ({"first": {"token": "t"}}, None, None, None, "no context given and no current-context set"),
        ({"first": {"token": "t"}}, None, "first", "nope", "no context named 'nope'"),
        ({"first": {"token": "t"}}, {"insecure-skip-tls-verify": True}, "first", None, "has no server"),
        (
            {"first": {"username": "admin", "password": "x"}},
            None,
            "first",
            None,
            "no token, tokenFile, client certificate or exec plugin",
        ),
    ],
)
def test_an_unusable_kubeconfig_says_what_is_wrong(
    tmp_path: Path, users: dict[str, Any], cluster: Any, current: str | None, context: str | None, message: str
) -> None:
    path = kubeconfig(tmp_path / "kc", users, cluster=cluster, current=current)
    with pytest.raises(KubeconfigError, match=message) as caught:
        load_kubeconfig(path, context)
    assert str(caught.value).startswith(str(path))


def test_an_unreadable_kubeconfig_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read kubeconfig"):
        load_kubeconfig(tmp_path / "missing")


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SandboxCluster]:
    sandbox = SandboxCluster(tmp_path_factory.mktemp("kubeconfig-cluster"))
    await sandbox.start()
    yield sandbox
    await sandbox.stop()


def sandbox_kubeconfig(cluster: SandboxCluster, path: Path, user: dict[str, Any]) -> Path:
    doc = yaml.safe_load(cluster.write_kubeconfig(path).read_text())
    doc["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(doc))
    return path


async def whoami(conn: Connection) -> str:
    """The user the cluster authenticates kubegate's own credentials as (a SelfSubjectReview)."""
    headers = {"Content-Type": "application/json"}
    authorization = await conn.credentials.authorization(None)
    if authorization:
        headers["Authorization"] = authorization
    body = b'{"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}'
    async with conn.session.post(
        f"{conn.server}/apis/authentication.k8s.io/v1/selfsubjectreviews", data=body, headers=headers
    ) as response:
        assert response.status == 201, await response.text()
        return str((await response.json())["status"]["userInfo"]["username"])


def connect(path: Path) -> Connection:
    return Connection(ConnectionConfig(name="sandbox", auth={"kubeconfig": {"path": path}}))


async def test_an_exec_plugin_context_authenticates_to_the_cluster(cluster: SandboxCluster, tmp_path: Path) -> None:
    cluster.add_token("from-the-plugin", "plugin-user", [])
    script = tmp_path / "plugin.py"
    script.write_text(
        "import json, os\nprint(json.dumps({'kind': 'ExecCredential', "
        "'status': {'token': os.environ['SANDBOX_TOKEN']}}))\n"
    )
    path = sandbox_kubeconfig(
        cluster,
        tmp_path / "kc",
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(script)],
                "env": [{"name": "SANDBOX_TOKEN", "value": "from-the-plugin"}],
            }
        },
    )
    conn = connect(path)
    try:
        assert await whoami(conn) == "plugin-user"
    finally:
        await conn.close()


async def test_a_rotated_token_file_is_used_from_the_next_request(cluster: SandboxCluster, tmp_path: Path) -> None:
    cluster.add_token("sa-token-1", "system:serviceaccount:kubegate:kubegate", [])
    cluster.add_token("sa-token-2", "system:serviceaccount:kubegate:rotated", [])
    token = tmp_path / "token"
    token.write_text("sa-token-1")
    conn = connect(sandbox_kubeconfig(cluster, tmp_path / "kc", {"tokenFile": str(token)}))
    try:
        assert await whoami(conn) == "system:serviceaccount:kubegate:kubegate"
        rotated = tmp_path / "token.new"
        rotated.write_text("sa-token-2")
        os.replace(rotated, token)
        assert await whoami(conn) == "system:serviceaccount:kubegate:rotated"
    finally:
        await conn.close()
