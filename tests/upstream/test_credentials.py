"""kubegate's own upstream credentials: static and rotating tokens, exec plugins, client certificates."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubegate.identity.model import Identity
from kubegate.tls import ensure_serving_cert, server_ssl_context
from kubegate.upstream.config import ConnectionConfig
from kubegate.upstream.connection import Connection
from kubegate.upstream.credentials import (
    ClientCertificate,
    CredentialError,
    ExecPlugin,
    StaticToken,
    TokenFile,
    ssl_context_for,
)

ALICE = Identity(issuer="https://idp", subject="alice", username="idp:alice")


async def test_a_static_token_is_the_same_for_everyone() -> None:
    token = StaticToken("s3cr3t")
    assert await token.authorization(None) == await token.authorization(ALICE) == "Bearer s3cr3t"
    assert token.client_cert() is None


def _write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_a_token_file_is_read_once_and_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    _write(path, "first\n", 1_000_000_000)
    source = TokenFile(path)
    assert await source.authorization(None) == "Bearer first"
    _write(path, "other\n", 1_000_000_000)  # same size and time: not read again
    assert await source.authorization(None) == "Bearer first"
    _write(path, "second\n", 2_000_000_000)
    assert await source.authorization(ALICE) == "Bearer second"


async def test_a_projected_token_rotated_by_symlink_swap_is_picked_up(tmp_path: Path) -> None:
    """The kubelet writes projected tokens as token -> ..data/token, ..data -> a timestamped directory,
    and rotates by pointing ..data at a new directory."""
    volume = tmp_path / "serviceaccount"
    volume.mkdir()
    for stamp, token in (("..2024_01_01", "old-token"), ("..2024_01_02", "new-token")):
        (volume / stamp).mkdir()
        (volume / stamp / "token").write_text(token)
    (volume / "..data").symlink_to("..2024_01_01")
    (volume / "token").symlink_to("..data/token")
    source = TokenFile(volume / "token")
    assert await source.authorization(None) == "Bearer old-token"
    (volume / "..data_tmp").symlink_to("..2024_01_02")
    os.replace(volume / "..data_tmp", volume / "..data")
    assert await source.authorization(None) == "Bearer new-token"


@pytest.mark.parametrize(("setup", "message"), [("missing", "cannot read token file"), ("empty", "is empty")])
async def test_an_unusable_token_file_is_a_credential_error(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "token"
    if setup == "empty":
        path.write_text("  \n")
    with pytest.raises(CredentialError, match=message):
        await TokenFile(path).authorization(None)


def plugin(tmp_path: Path, body: str) -> ExecPlugin:
    """An exec credential plugin: a Python script, run as kubectl runs one; it counts its runs in `runs`."""
    script = tmp_path / "plugin.py"
    script.write_text(
        textwrap.dedent("""
        import json, os, pathlib, sys
        runs = pathlib.Path(sys.argv[1])
        n = int(runs.read_text()) + 1 if runs.exists() else 1
        runs.write_text(str(n))
        info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
    """)
        + textwrap.dedent(body)
    )
    return ExecPlugin(
        sys.executable,
        [str(script), str(tmp_path / "runs")],
        {"PLUGIN_TEAM": "platform"},
        "client.authentication.k8s.io/v1",
    )


def runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def _stamp(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_an_exec_plugin_token_is_cached_until_its_expiry(tmp_path: Path) -> None:
    source = plugin(
        tmp_path,
        f"""
        assert info["kind"] == "ExecCredential" and info["spec"]["interactive"] is False
        token = f"{{os.environ['PLUGIN_TEAM']}}-{{n}}"
        print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                          "status": {{"token": token, "expirationTimestamp": "{_stamp(3600)}"}}}}))
    """,
    )
    assert await source.authorization(None) == "Bearer platform-1"
    assert await source.authorization(ALICE) == "Bearer platform-1"
    assert runs(tmp_path) == 1


async def test_an_exec_plugin_is_run_again_when_its_token_is_about_to_expire(tmp_path: Path) -> None:
    source = plugin(
        tmp_path,
        f"""
        print(json.dumps({{"status": {{"token": f"t{{n}}", "expirationTimestamp": "{_stamp(30)}"}}}}))
    """,
    )
    assert await source.authorization(None) == "Bearer t1"
    assert await source.authorization(None) == "Bearer t2"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("print('no credentials for you', file=sys.stderr); sys.exit(3)", r"failed \(3\): no credentials for you"),
        ("print('not json')", "printed no token"),
        ("print(json.dumps({'status': {}}))", "printed no token"),
    ],
)
async def test_a_failing_exec_plugin_is_a_credential_error(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        await plugin(tmp_path, body).authorization(None)


class PKI:
    """A CA, a serving certificate for 127.0.0.1 and a client certificate it signed."""

    def __init__(self, directory: Path) -> None:
        files = ensure_serving_cert(directory, ["127.0.0.1"], cn="upstream")
        self.ca, self.server_cert, self.server_key = files.ca, files.cert, files.key
        ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubegate-client")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        self.client_cert, self.client_key = directory / "client.crt", directory / "client.key"
        self.client_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.client_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )


@pytest.fixture
async def mtls(tmp_path: Path) -> AsyncIterator[tuple[PKI, str]]:
    """An HTTPS server that requires a client certificate from its CA and answers with the client's CN."""
    pki = PKI(tmp_path / "pki")
    ctx = server_ssl_context(pki.server_cert, pki.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(pki.ca))

    async def whoami(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item for rdn in (peer or {}).get("subject", ()) for item in rdn)
        return web.json_response(
            {"cn": subject.get("commonName"), "authorization": request.headers.get("Authorization")}
        )

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield pki, f"https://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_client_certificate_is_presented_upstream(mtls: tuple[PKI, str]) -> None:
    pki, url = mtls
    conn = Connection(
        ConnectionConfig(
            name="mtls",
            server=url,
            certificate_authority=pki.ca,
            auth={"client_certificate": pki.client_cert, "client_key": pki.client_key},
        )
    )
    try:
        assert isinstance(conn.credentials, ClientCertificate)
        headers = await conn.upstream_identity_headers(ALICE)
        async with conn.session.get(f"{conn.server}/whoami") as response:
            seen = await response.json()
    finally:
        await conn.close()
    assert seen == {"cn": "kubegate-client", "authorization": None}
    assert not [v for k, v in headers if k == "Authorization"]
    assert ("Impersonate-User", "idp:alice") in headers


async def test_certificate_data_is_presented_and_leaves_no_file(
    mtls: tuple[PKI, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubeconfig `client-*-data`: loaded from a private directory removed at once, never left in TMPDIR."""
    pki, url = mtls
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    conn = Connection(ConnectionConfig(name="mtls", server=url, certificate_authority=pki.ca, auth={"token": "t"}))
    try:
        ctx = ssl_context_for(pki.ca, None, False, (pki.client_cert.read_bytes(), pki.client_key.read_bytes()))
        async with conn.session.get(f"{url}/whoami", ssl=ctx) as response:
            seen = await response.json()
    finally:
        await conn.close()
    assert seen["cn"] == "kubegate-client"
    assert list(scratch.iterdir()) == []


async def test_without_the_client_certificate_the_server_refuses(mtls: tuple[PKI, str]) -> None:
    pki, url = mtls
    conn = Connection(ConnectionConfig(name="mtls", server=url, certificate_authority=pki.ca, auth={"token": "t"}))
    try:
        with pytest.raises(aiohttp.ClientError):  # TLS 1.3: the server drops the connection
            async with conn.session.get(f"{conn.server}/whoami") as response:
                await response.read()
    finally:
        await conn.close()
