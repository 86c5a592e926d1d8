"""A bad kubegate.yaml names the file, the field and the problem; a good one resolves its paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from kubegate.config import load_config
from kubegate.configbase import ConfigError
from kubegate.durations import parse_duration
from kubegate.identity.config import IssuerConfig

GOOD = """
listen: {address: "127.0.0.1:9443"}
identity:
  issuers:
    - url: https://token.actions.githubusercontent.com
      audience: kubegate
      claims: [repository, run_id]
connections:
  - name: dev
    server: https://k8s.example.com
    certificate_authority: ca.crt
    auth: {token_file: token}
"""

BAD = [
    ("listen: {address: nowhere}", "listen.address: 'nowhere' is not HOST:PORT"),
    (
        "connections: [{name: Dev_1, server: 'https://x', auth: {token: t}}]",
        "connections[0].name: String should match pattern",
    ),
    (
        "connections: [{name: dev, server: 'https://x', auth: {}}]",
        "connections[0].auth: choose exactly one of kubeconfig, in_cluster, token_file, token, client_certificate, eks",
    ),
    ("connections: [{name: dev, server: 'https://x', auth: {token: t, token_file: f}}]", "(got token_file, token)"),
    (
        "connections: [{name: dev, auth: {token: t}}]",
        "connections[0]: server is required unless auth.kubeconfig or auth.in_cluster supplies it",
    ),
    ("connections: [{name: dev, auth: {in_cluster: true, token: t}}]", "(got in_cluster, token)"),
    ("connections: [{name: dev, server: 'https://x', auth: {in_cluster: false}}]", "choose exactly one"),
    (
        "identity: {issuers: [{url: 'http://idp.example.com', audience: x}]}",
        "identity.issuers[0].url: 'http://idp.example.com' must be https://: plain http is allowed only for a "
        "loopback address",
    ),
    (
        "identity: {issuers: [{url: 'https://idp', audience: x, jwks_url: 'http://keys.example/jwks'}]}",
        "identity.issuers[0].jwks_url: 'http://keys.example/jwks' must be https://",
    ),
    (
        "identity: {issuers: [{url: 'ftp://idp', audience: x}]}",
        "identity.issuers[0].url: 'ftp://idp' must be an https:// URL",
    ),
    (
        "identity: {issuers: [{url: 'https://idp', audience: x, leeway_seconds: 300}]}",
        "identity.issuers[0].leeway_seconds: Input should be less than or equal to 60",
    ),
    (
        "identity: {issuers: [{url: 'https://a', audience: x, username_prefix: ''}, {url: 'https://b', audience: x}]}",
        "identity: issuers[1].username_prefix 'https://b#' begins with issuers[0]'s '', so a user name would not say "
        "which issuer it came from",
    ),
    (
        "identity: {issuers: [{url: 'https://a', audience: x, username_prefix: 'gh:'},"
        " {url: 'https://b', audience: x, username_prefix: 'gh:'}]}",
        "identity: issuers[1].username_prefix 'gh:' begins with issuers[0]'s 'gh:'",
    ),
    (
        "identity: {issuers: [{url: 'https://a', audience: x, username_prefix: 'system:'}]}",
        "identity.issuers[0].username_prefix: 'system:' starts with system:, which Kubernetes reserves",
    ),
    (
        "identity: {issuers: [{url: 'https://a', audience: x, groups_prefix: 'system:x-'}]}",
        "identity.issuers[0].groups_prefix: 'system:x-' starts with system:",
    ),
    ("store: {retention: forever}", "store.retention: 'forever' is not a duration"),
    ("listen: {adress: '1:2'}", "listen.adress: Extra inputs are not permitted"),
    ("policies: [{name: x, action: permit}]", "policies[0].action: Input should be"),
    (
        "connections: [{name: a, server: 'https://x', auth: {token: t}},"
        " {name: a, server: 'https://y', auth: {token: t}}]",
        "connection names must be unique: a",
    ),
    ("- just\n- a list", "(top level): must be a mapping"),
    ("listen: {address: [unclosed", "not valid YAML"),
]


def test_good_config_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "kubegate.yaml").write_text(GOOD)
    cfg = load_config(tmp_path / "kubegate.yaml")
    conn = cfg.connections[0]
    assert conn.certificate_authority == (tmp_path / "ca.crt").resolve()
    assert conn.auth.token_file == (tmp_path / "token").resolve()
    assert cfg.listen.port == 9443 and cfg.identity.issuers[0].claims == ["repository", "run_id"]
    assert cfg.identity.issuers[0].user_prefix == "https://token.actions.githubusercontent.com#"


def test_in_cluster_is_a_flag_or_the_service_account_directory(tmp_path: Path) -> None:
    (tmp_path / "kubegate.yaml").write_text(
        "connections:\n- {name: here, auth: {in_cluster: true}}\n- {name: there, auth: {in_cluster: {directory: sa}}}\n"
    )
    here, there = load_config(tmp_path / "kubegate.yaml").connections
    assert here.server is None and here.auth.in_cluster is not None
    assert here.auth.in_cluster.directory == Path("/var/run/secrets/kubernetes.io/serviceaccount")
    assert there.auth.in_cluster is not None and there.auth.in_cluster.directory == (tmp_path / "sa").resolve()


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_configs_name_file_field_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_serve_with_a_bad_file_exits_non_zero_and_prints_the_field(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text("listen: {address: nowhere}\nstore: {retention: soon}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "kubegate", "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert f"{path}: listen.address: 'nowhere' is not HOST:PORT" in proc.stderr
    assert f"{path}: store.retention: 'soon' is not a duration" in proc.stderr


def test_serve_refuses_a_bare_policy_user_when_several_issuers_are_trusted(tmp_path: Path) -> None:
    path = tmp_path / "kubegate.yaml"
    path.write_text(
        "identity: {issuers: [{url: 'https://a.example', audience: k, username_prefix: 'a:'},"
        " {url: 'https://b.example', audience: k, username_prefix: 'b:'}]}\n"
        "policies: [{name: bob-reads, action: allow, subjects: {users: [bob]}}]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "kubegate", "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{path}: policies[0].subjects.users[0]: 'bob' names no issuer" in proc.stderr
    assert "write the Kubernetes user name, 'a:bob' or 'b:bob'" in proc.stderr


@pytest.mark.parametrize(("text", "seconds"), [("90d", 7776000), ("1h", 3600), ("30s", 30), ("250ms", 0.25), (12, 12)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "url",
    ["http://localhost.attacker.example", "http://127.0.0.1@attacker.example", "http://kubegate-issuer", "https://"],
)
def test_an_issuer_over_plain_http_off_this_machine_is_a_config_error(url: str) -> None:
    with pytest.raises(ValidationError) as err:
        IssuerConfig(url=url, audience="x")
    assert err.value.errors()[0]["loc"] == ("url",) and "https://" in str(err.value)


@pytest.mark.parametrize("url", ["https://idp.example.com", "http://127.0.0.1:5556", "http://[::1]:5556"])
def test_https_and_loopback_issuers_load(url: str) -> None:
    assert IssuerConfig(url=url, audience="x").url == url


def test_store_url_and_ui_secret_can_come_from_mounted_secret_files(tmp_path: Path) -> None:
    (tmp_path / "store-url").write_text("postgresql://kubegate:pw@db/kubegate\n")
    (tmp_path / "session").write_text("s" * 32)
    (tmp_path / "kubegate.yaml").write_text("store: {url_file: store-url}\nui: {session_secret_file: session}\n")
    cfg = load_config(tmp_path / "kubegate.yaml")
    assert cfg.store_url == "postgresql://kubegate:pw@db/kubegate" and cfg.ui.secret == "s" * 32
    (tmp_path / "session").write_text("short")
    with pytest.raises(ConfigError, match=r"session_secret_file: .* fewer than 32 characters"):
        load_config(tmp_path / "kubegate.yaml")
    (tmp_path / "store-url").unlink()
    with pytest.raises(ConfigError, match=r"kubegate.yaml: store.url_file: cannot read .*store-url"):
        load_config(tmp_path / "kubegate.yaml")


def test_a_secret_and_its_file_are_alternatives(tmp_path: Path) -> None:
    (tmp_path / "kubegate.yaml").write_text("store: {url: 'sqlite:///x.db', url_file: f}\n")
    with pytest.raises(ConfigError, match="url and url_file are alternatives"):
        load_config(tmp_path / "kubegate.yaml")
