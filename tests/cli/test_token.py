"""`kubegate token` (ExecCredential for kubectl) and `kubegate sandbox token` against real local servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import typer
from aiohttp import web
from typer.testing import CliRunner, Result

from kubegate.cli import sandbox, token, tokencache
from kubegate.sandbox.issuer import DevIssuer


def make_app() -> typer.Typer:
    app = typer.Typer()
    token.register(app)
    sandbox.register(app)
    return app


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(make_app(), args, env=env)


async def run_async(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run the (blocking) command in a thread so servers on this event loop can answer it."""
    return await asyncio.to_thread(run, args, env)


def credential(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def rfc3339(exp: int) -> str:
    return dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unsigned_jwt(**claims: Any) -> str:
    return jwt.encode(claims, "k" * 32, algorithm="HS256")


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own token cache, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
async def issuer(tmp_path: Path) -> AsyncIterator[DevIssuer]:
    async with DevIssuer(tmp_path / "issuer") as dev:
        yield dev


FUTURE = int(dt.datetime.now(dt.UTC).timestamp()) + 3600


def test_from_env_prints_exec_credential() -> None:
    value = unsigned_jwt(sub="alice", exp=FUTURE)
    cred = credential(run(["token", "--from-env", "MY_TOKEN"], env={"MY_TOKEN": value}))
    assert cred == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "spec": {},
        "status": {"token": value, "expirationTimestamp": rfc3339(FUTURE)},
    }


def test_from_file_prints_exec_credential(tmp_path: Path) -> None:
    value = unsigned_jwt(sub="alice", exp=FUTURE)
    (tmp_path / "token").write_text(value + "\n")
    cred = credential(run(["token", "--from-file", str(tmp_path / "token")]))
    assert cred["status"] == {"token": value, "expirationTimestamp": rfc3339(FUTURE)}


def test_answers_the_exec_api_version_kubectl_asked_for() -> None:
    info = json.dumps(
        {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    cred = credential(
        run(["token", "--from-env", "T"], env={"T": unsigned_jwt(exp=FUTURE), "KUBERNETES_EXEC_INFO": info})
    )
    assert cred["apiVersion"] == "client.authentication.k8s.io/v1beta1"


def test_token_without_exp_has_no_expiration_timestamp() -> None:
    cred = credential(run(["token", "--from-env", "T"], env={"T": unsigned_jwt(sub="a")}))
    assert "expirationTimestamp" not in cred["status"]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["token"], {}, "choose exactly one token source"),
        (["token", "--from-env", "T", "--github-actions"], {"T": "tok-123"}, "(got --from-env, --github-actions)"),
        (["token", "--from-env", "NOPE"], {}, "environment variable NOPE is not set or empty"),
        (["token", "--from-file", "/nonexistent/token"], {}, "cannot read /nonexistent/token"),
        (["token", "--from-env", "T"], {"T": "opaque-secret-value"}, "environment variable T does not hold a JWT"),
        (["token", "--from-env", "T"], {"T": unsigned_jwt(exp=1000)}, "expired at 1970-01-01T00:16:40Z"),
        (["token", "--github-actions"], {"ACTIONS_ID_TOKEN_REQUEST_URL": ""}, "id-token: write"),
        (["token", "--dev-issuer", "https://127.0.0.1:1"], {}, "--dev-issuer needs --sub"),
    ],
)
def test_errors_go_to_stderr_without_the_token(args: list[str], env: dict[str, str], message: str) -> None:
    result = run(args, env)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""
    for value in env.values():
        if value:
            assert value not in result.stderr


@pytest.fixture
async def actions_service() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in for the GitHub Actions token service: answers {"value": <jwt for the audience>}."""
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({"auth": request.headers.get("Authorization", ""), **request.query})
        if request.headers.get("Authorization") != "bearer runtime-token":
            return web.json_response({"message": "bad credentials"}, status=401)
        value = unsigned_jwt(
            aud=request.query["audience"], exp=FUTURE, iss="https://token.actions.githubusercontent.com"
        )
        return web.json_response({"count": 1, "value": value})

    app = web.Application()
    app.router.add_get("/idtoken", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/idtoken?api-version=2.0", seen
    await runner.cleanup()


async def test_github_actions_flow(actions_service: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = actions_service
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runtime-token"}
    cred = credential(await run_async(["token", "--github-actions", "--audience", "kubegate-prod"], env))
    assert seen == [{"auth": "bearer runtime-token", "api-version": "2.0", "audience": "kubegate-prod"}]
    claims = jwt.decode(cred["status"]["token"], options={"verify_signature": False})
    assert claims["aud"] == "kubegate-prod"
    assert cred["status"]["expirationTimestamp"] == rfc3339(FUTURE)


async def test_github_actions_refusal_is_reported(actions_service: tuple[str, list[dict[str, str]]]) -> None:
    url, _ = actions_service
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong"}
    result = await run_async(["token", "--github-actions"], env)
    assert result.exit_code == 1
    assert "the GitHub Actions token service answered HTTP 401" in result.stderr


async def test_dev_issuer_flow(issuer: DevIssuer) -> None:
    cred = credential(
        await run_async(
            [
                "token",
                "--dev-issuer",
                issuer.url,
                "--ca",
                str(issuer.ca_file),
                "--sub",
                "alice",
                "--group",
                "dev",
                "--group",
                "ops",
                "--claim",
                "repository=acme/app",
                "--lifetime",
                "15m",
            ]
        )
    )
    value = cred["status"]["token"]
    key = jwt.PyJWKSet.from_dict(issuer.jwks())[jwt.get_unverified_header(value)["kid"]]
    claims = jwt.decode(value, key=key, algorithms=["RS256"], audience="kubegate", issuer=issuer.url)
    assert (claims["sub"], claims["groups"], claims["repository"]) == ("alice", ["dev", "ops"], "acme/app")
    assert claims["exp"] - claims["iat"] == 900
    assert cred["status"]["expirationTimestamp"] == rfc3339(claims["exp"])


async def test_dev_issuer_with_untrusted_certificate_fails(issuer: DevIssuer) -> None:
    result = await run_async(["token", "--dev-issuer", issuer.url, "--sub", "alice"])
    assert result.exit_code == 1
    assert f"cannot reach the development issuer at {issuer.url}" in result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr


async def test_sandbox_token_prints_a_bare_token(issuer: DevIssuer) -> None:
    result = await run_async(
        [
            "sandbox",
            "token",
            "--issuer",
            issuer.url,
            "--ca",
            str(issuer.ca_file),
            "--sub",
            "bob",
            "--group",
            "ci",
            "--claim",
            "run_id=9",
            "--lifetime",
            "30m",
            "--audience",
            "demo",
        ]
    )
    assert result.exit_code == 0, result.stderr
    value = result.stdout.strip()
    claims = jwt.decode(value, options={"verify_signature": False})
    assert (claims["sub"], claims["groups"], claims["run_id"], claims["aud"]) == ("bob", ["ci"], "9", "demo")
    assert claims["exp"] - claims["iat"] == 1800


async def test_sandbox_token_reports_issuer_errors(issuer: DevIssuer) -> None:
    result = await run_async(
        ["sandbox", "token", "--issuer", issuer.url, "--ca", str(issuer.ca_file), "--sub", "bob", "--lifetime", "30d"]
    )
    assert result.exit_code == 1
    assert "answered HTTP 400 Bad Request: lifetime must be between" in result.stderr


def test_sandbox_token_rejects_bad_input() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(["sandbox", "token", "--issuer", f"https://127.0.0.1:{port}", "--sub", "b", "--claim", "x"])
    assert result.exit_code == 1 and "--claim 'x' is not NAME=VALUE" in result.stderr
    result = run(["sandbox", "token", "--issuer", f"https://127.0.0.1:{port}", "--sub", "b", "--lifetime", "1y"])
    assert result.exit_code == 1 and "--lifetime" in result.stderr
    result = run(["sandbox", "token", "--issuer", f"https://127.0.0.1:{port}", "--sub", "b"])
    assert result.exit_code == 1 and "cannot reach the development issuer" in result.stderr


async def test_network_tokens_are_cached_per_audience_and_job(
    actions_service: tuple[str, list[dict[str, str]]], cache_home: Path
) -> None:
    url, seen = actions_service
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runtime-token"}
    first = credential(await run_async(["token", "--github-actions"], env))
    again = credential(await run_async(["token", "--github-actions"], env))
    assert again == first and len(seen) == 1
    other = credential(await run_async(["token", "--github-actions", "--audience", "other"], env))
    assert len(seen) == 2 and other["status"]["token"] != first["status"]["token"]
    next_job = {**env, "ACTIONS_ID_TOKEN_REQUEST_URL": url + "&run=2"}
    credential(await run_async(["token", "--github-actions"], next_job))
    credential(await run_async(["token", "--github-actions", "--no-cache"], env))
    assert len(seen) == 4

    directory = cache_home / "kubegate" / "tokens"
    files = list(directory.iterdir())
    assert len(files) == 3 and not [f for f in files if f.name.startswith(".tmp")]
    assert directory.stat().st_mode & 0o777 == 0o700
    assert {f.stat().st_mode & 0o777 for f in files} == {0o600}


async def test_a_token_close_to_expiry_is_fetched_again(actions_service: tuple[str, list[dict[str, str]]]) -> None:
    url, seen = actions_service
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": url, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runtime-token"}
    credential(await run_async(["token", "--github-actions"], env))
    [entry] = Path(tokencache.cache_dir()).iterdir()
    entry.write_text(json.dumps({"token": "stale", "exp": dt.datetime.now(dt.UTC).timestamp() + 30}))
    cred = credential(await run_async(["token", "--github-actions"], env))
    assert len(seen) == 2 and cred["status"]["token"] != "stale"


def test_the_plugin_imports_neither_typer_nor_the_store(tmp_path: Path) -> None:
    """kubectl runs the plugin on every call: `kubegate token` must not pay for the other commands."""
    code = (
        "import atexit, sys\n"
        "heavy = ('typer', 'click', 'rich', 'sqlalchemy', 'pydantic', 'jwt', 'aiohttp', 'ssl')\n"
        "atexit.register(lambda: sys.stderr.write('loaded:' + ','.join(m for m in heavy if m in sys.modules)))\n"
        "from kubegate.cli.main import main\n"
        "sys.argv = ['kubegate', 'token', '--from-env', 'T']\n"
        "main()\n"
    )
    env = {**os.environ, "T": unsigned_jwt(exp=FUTURE), "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kind"] == "ExecCredential"
    assert done.stderr.endswith("loaded:")


def test_plugin_help_lists_its_flags() -> None:
    result = run(["token", "--help"])
    assert result.exit_code == 0
    assert "--github-actions" in result.stdout and "--no-cache" in result.stdout


def test_write_file_writes_the_bare_token_privately_and_prints_nothing(tmp_path: Path) -> None:
    value = unsigned_jwt(sub="alice", exp=FUTURE)
    target = tmp_path / "token"
    target.write_text("an older token")
    result = run(["token", "--from-env", "T", "--write-file", str(target)], env={"T": value})
    assert result.exit_code == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    assert target.read_text() == value
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temporary file left beside it


def test_write_file_into_a_missing_directory_fails_without_the_token(tmp_path: Path) -> None:
    value = unsigned_jwt(sub="alice", exp=FUTURE)
    result = run(["token", "--from-env", "T", "--write-file", str(tmp_path / "no" / "token")], env={"T": value})
    assert result.exit_code == 1
    assert f"cannot write {tmp_path / 'no' / 'token'}" in result.stderr
    assert value not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "args", [["--from-env", "T", "--write-file", "f"], ["--dev-issuer", "https://x", "--sub", "a"]]
)
def test_keep_fresh_needs_a_file_and_a_source_that_fetches(args: list[str]) -> None:
    result = run(["token", *args, "--keep-fresh"], env={"T": unsigned_jwt(exp=FUTURE)})
    assert result.exit_code == 2
    assert "--keep-fresh needs --write-file and a source that can fetch a new token" in result.stderr


def test_a_token_is_rewritten_while_kubectl_can_still_use_it() -> None:
    now = 1_000_000.0
    hour = dt.datetime.fromtimestamp(now + 3600, dt.UTC)
    assert token.rewrite_at(hour, now) == now + 3600 - token.REWRITE_BEFORE  # client-go re-reads within a minute
    short = dt.datetime.fromtimestamp(now + 10, dt.UTC)
    assert token.rewrite_at(short, now) == now + 5  # short tokens: at half their life


async def test_keep_fresh_rewrites_the_file_before_expiry_and_stops_when_it_is_removed(
    issuer: DevIssuer, tmp_path: Path
) -> None:
    target = tmp_path / "token"
    argv = [sys.executable, "-m", "kubegate", "token", "--dev-issuer", issuer.url, "--ca", str(issuer.ca_file)]
    argv += ["--sub", "ci", "--lifetime", "4s", "--write-file", str(target), "--keep-fresh"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen: list[str] = []
        for _ in range(200):  # each token lives 4 s and is replaced after 2: three within ~6 s
            if target.exists() and target.read_text() not in seen:
                seen.append(target.read_text())
            if len(seen) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(seen) == 3
        exps = [tokencache.jwt_claims(v)["exp"] for v in seen]  # type: ignore[index]
        assert exps == sorted(exps) and len(set(exps)) == 3
        assert oct(target.stat().st_mode & 0o777) == "0o600"
        target.unlink()
        out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
        assert proc.returncode == 0, err
        assert out == b""
        assert not any(v.encode() in err for v in seen)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
