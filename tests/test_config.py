"""A bad kubegate.yaml names the file, the field and the problem; a good one resolves its paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubegate.config import ConfigError, load_config, parse_duration

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
    ("connections: [{name: Dev_1, server: 'https://x', auth: {token: t}}]",
     "connections[0].name: String should match pattern"),
    ("connections: [{name: dev, server: 'https://x', auth: {}}]",
     "connections[0].auth: choose exactly one of kubeconfig, in_cluster, token_file, token, client_certificate, eks"),
    ("connections: [{name: dev, server: 'https://x', auth: {token: t, token_file: f}}]",
     "(got token_file, token)"),
    ("connections: [{name: dev, auth: {token: t}}]",
     "connections[0]: server is required unless auth.kubeconfig or auth.in_cluster supplies it"),
    ("connections: [{name: dev, auth: {in_cluster: true, token: t}}]", "(got in_cluster, token)"),
    ("connections: [{name: dev, server: 'https://x', auth: {in_cluster: false}}]", "choose exactly one"),
    ("identity: {issuers: [{url: 'http://idp.example.com', audience: x}]}",
     "identity.issuers[0].url: an issuer URL must be https://"),
    ("identity: {issuers: [{url: 'https://idp', audience: x, leeway_seconds: 300}]}",
     "identity.issuers[0].leeway_seconds: Input should be less than or equal to 60"),
    ("store: {retention: forever}", "store.retention: 'forever' is not a duration"),
    ("listen: {adress: '1:2'}", "listen.adress: Extra inputs are not permitted"),
    ("policies: [{name: x, action: permit}]", "policies[0].action: Input should be"),
    ("connections: [{name: a, server: 'https://x', auth: {token: t}},"
     " {name: a, server: 'https://y', auth: {token: t}}]",
     "connection names must be unique: a"),
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
    (tmp_path / "kubegate.yaml").write_text("connections:\n- {name: here, auth: {in_cluster: true}}\n"
                                            "- {name: there, auth: {in_cluster: {directory: sa}}}\n")
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
    proc = subprocess.run([sys.executable, "-m", "kubegate", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{path}: listen.address: 'nowhere' is not HOST:PORT" in proc.stderr
    assert f"{path}: store.retention: 'soon' is not a duration" in proc.stderr


@pytest.mark.parametrize(("text", "seconds"), [("90d", 7776000), ("1h", 3600), ("30s", 30), ("250ms", 0.25),
                                               (12, 12)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


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
