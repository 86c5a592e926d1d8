"""The credential plugin's entry point: a cached token is answered with the standard library alone, as the
kubeconfig runs it (`python -S -P`), and everything that is not a cached token goes to `kubegate token`."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest

from kubegate.cli import plugin, token, tokencache
from kubegate.cli.invocation import token_plugin

SOURCE = ["--dev-issuer", "https://issuer.invalid", "--sub", "ci"]
BEFORE = ("argparse", "urllib", "ssl", "datetime", "pathlib", "kubegate.cli.token")


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_the_kubeconfig_plugin_answers_a_cached_token_without_loading_the_command(cache_home: Path) -> None:
    exp = time.time() + 3600
    tokencache.store(tokencache.argv_key(SOURCE), "cached-token", exp)
    block = token_plugin(SOURCE)
    env = {
        "PATH": "/usr/bin:/bin",
        "XDG_CACHE_HOME": str(cache_home),
        "KUBERNETES_EXEC_INFO": json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1"}),
        **{e["name"]: e["value"] for e in block["env"]},
    }
    # -X importtime lists every module the plugin loads on stderr
    argv = [block["command"], "-X", "importtime", *block["args"]]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    credential = json.loads(done.stdout)
    assert credential["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert credential["status"] == {
        "token": "cached-token",
        "expirationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp)),
    }
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "kubegate.cli.plugin" in loaded
    assert not loaded & set(BEFORE), loaded & set(BEFORE)


@pytest.mark.parametrize("flag", sorted(plugin.NOT_CACHED))
def test_what_is_not_a_cached_token_goes_to_the_command(flag: str, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [*SOURCE, flag]
    tokencache.store(tokencache.argv_key(argv), "cached-token", time.time() + 3600)
    monkeypatch.setattr(token, "main", lambda args: 7 if args == argv else 1)
    assert plugin.main(argv) == 7


def test_a_token_the_command_fetched_is_the_one_the_plugin_serves(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched = f"h.{_payload(exp=int(time.time()) + 3600)}.s"
    monkeypatch.setattr(token, "dev_issuer_token", lambda *args: fetched)
    assert plugin.main(SOURCE) == 0  # a miss: the command fetches and caches
    monkeypatch.setattr(token, "main", lambda args: pytest.fail("the second call should be a cache hit"))
    assert plugin.main(SOURCE) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert json.loads(first) == json.loads(second)
    assert json.loads(second)["status"]["token"] == fetched


def test_the_command_takes_no_abbreviated_flags() -> None:
    """An abbreviation such as --no-c would be a flag plugin.NOT_CACHED does not know."""
    with pytest.raises(SystemExit) as exc:
        token.main([*SOURCE, "--no-c"])
    assert exc.value.code == 2


def test_each_job_and_source_has_its_own_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://actions.invalid/token?run=1")
    job_one = tokencache.argv_key(["--github-actions"])
    for how in (["--no-cache"], ["--write-file", "token"], ["--write-file=token", "--keep-fresh"]):
        assert tokencache.argv_key(["--github-actions", *how]) == job_one
    assert tokencache.argv_key(["--github-actions", "--audience", "other"]) != job_one
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "https://actions.invalid/token?run=2")
    assert tokencache.argv_key(["--github-actions"]) != job_one


def _payload(**claims: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
