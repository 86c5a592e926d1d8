"""`kubegate serve` stops with one line and status 2 on what it cannot start with, not with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml


def _serve(tmp_path: Path, doc: dict[str, object]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "kubegate.yaml").write_text(
        yaml.safe_dump({"listen": {"address": "127.0.0.1:0"}, "state_dir": str(tmp_path / "state"), **doc})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    return subprocess.run(
        [sys.executable, "-m", "kubegate", "serve", "--config", str(tmp_path / "kubegate.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_in_cluster_credentials_outside_a_pod_are_named(tmp_path: Path) -> None:
    proc = _serve(tmp_path, {"connections": [{"name": "here", "auth": {"in_cluster": True}}]})
    assert proc.returncode == 2, proc.stderr
    assert "kubegate: connection here: in_cluster needs KUBERNETES_SERVICE_HOST" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unreadable_secret_file_is_a_configuration_error(tmp_path: Path) -> None:
    proc = _serve(tmp_path, {"store": {"url_file": "missing"}})
    assert proc.returncode == 2 and "invalid configuration" in proc.stderr
    assert "store.url_file: cannot read" in proc.stderr


def test_a_policy_naming_an_unknown_mask_stops_serve_before_it_listens(tmp_path: Path) -> None:
    rules = [{"name": "readers", "subjects": {"groups": ["dev"]}, "action": "allow", "mask": ["secret-valuez"]}]
    proc = _serve(tmp_path, {"policies": rules})
    assert proc.returncode == 2, proc.stderr
    assert "policies[0].mask: 'secret-valuez' is not a mask profile or detector" in proc.stderr
    assert "secret-values" in proc.stderr, "the message lists the names that exist"
