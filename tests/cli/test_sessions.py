"""`kubegate sessions ...` against the admin API routes served over HTTPS from a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import typer
import yaml
from aiohttp import web
from typer.testing import CliRunner

from kubegate.cli import context
from kubegate.cli import sessions as sessions_cli
from kubegate.identity.model import Identity
from kubegate.kube.status import Refused
from kubegate.recording.recorder import Recorder
from kubegate.store.engine import Store
from kubegate.tls import ensure_serving_cert, server_ssl_context
from kubegate.web.sessions_api import setup_routes

AUDITOR = Identity(issuer="https://idp.example", subject="carol", username="idp#carol", groups=("auditors",))


async def _authorize(request: web.Request, roles: set[str]) -> Identity:
    if request.headers.get("Authorization") == "Bearer auditor-token":
        return AUDITOR
    raise Refused(401, "kubegate refused the token: it has expired", reason="Unauthorized")


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def _fill(store: Store) -> dict[str, str]:
    """Sessions recorded through the generic recorder API, with known times for replay timing."""
    clock = Clock()
    recorder = Recorder(store, clock=clock)
    ids: dict[str, str] = {}
    for name, command, status in (("get", "kubectl get", 200), ("delete", "kubectl delete", 403)):
        sid = recorder.session_for(_flow(name, command))  # type: ignore[arg-type]
        clock.now += 1.0
        await recorder.record_event(
            sid,
            "request",
            {
                "method": "GET",
                "path": "/api/v1/namespaces/default/pods",
                "query": "limit=500",
                "info": {"verb": "list", "resource": "pods", "namespace": "default"},
            },
            durable=True,
            counts_request=True,
        )
        clock.now += 0.5
        await recorder.record_event(
            sid,
            "response",
            {
                "status": status,
                "duration_ms": 500.0,
                "bytes": 14,
                "body": f"answer-{name}\n",
                "encoding": "utf-8",
                "truncated": False,
            },
            durable=True,
            outcome="ok" if status == 200 else "denied",
        )
        ids[name] = sid
        clock.now += 10
    await recorder.close()
    return ids


DEV = Identity(
    issuer="https://idp.example", subject="dev", username="idp#dev", groups=("developers",), claims={"actor": "dev"}
)


def _flow(kubectl_session: str, command: str) -> SimpleNamespace:
    """Just what Recorder.session_for reads of a Flow."""
    return SimpleNamespace(
        kubectl_session=kubectl_session,
        kubectl_command=command,
        identity=DEV,
        connection=SimpleNamespace(name="dev"),
        request=SimpleNamespace(headers={"User-Agent": "kubectl/v1.32.4"}, remote="10.0.0.7"),
    )


@dataclass
class Served:
    url: str
    ca: Path
    ids: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("sessions-cli")
    certs = ensure_serving_cert(tmp / "tls", ["127.0.0.1"])
    loop = asyncio.new_event_loop()
    ready: dict[str, object] = {}

    async def start() -> None:
        store = await Store.open(f"sqlite:///{tmp / 'kubegate.db'}")
        ready["ids"] = await _fill(store)
        app = web.Application()
        setup_routes(app, lambda: store, _authorize)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(certs.cert, certs.key))
        await site.start()
        ready.update(runner=runner, store=store, port=runner.addresses[0][1])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    yield Served(f"https://127.0.0.1:{ready['port']}", certs.ca, ready["ids"])  # type: ignore[arg-type]

    async def stop() -> None:
        await ready["runner"].cleanup()  # type: ignore[attr-defined]
        await ready["store"].close()  # type: ignore[attr-defined]

    asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def run(served: Served, *args: str, token: str = "auditor-token") -> tuple[int, str]:
    app = typer.Typer()
    sessions_cli.register(app)
    env = {"KUBEGATE_SERVER": served.url, "KUBEGATE_CA": str(served.ca), "KUBEGATE_TOKEN": token}
    result = CliRunner().invoke(app, ["sessions", *args], env=env)
    return result.exit_code, result.output


def test_list(served: Served) -> None:
    code, out = run(served, "list")
    assert code == 0, out
    assert served.ids["get"] in out and served.ids["delete"] in out
    assert out.index(served.ids["delete"]) < out.index(served.ids["get"])  # newest first
    assert "list pods -n default" in out
    code, out = run(served, "list", "--outcome", "denied", "-o", "json")
    assert [s["id"] for s in orjson.loads(out)["items"]] == [served.ids["delete"]]
    code, out = run(served, "list", "--limit", "1")
    assert code == 0 and "more sessions: add --continue" in out


def test_output_formats_and_outcomes_are_checked_choices(served: Served) -> None:
    code, out = run(served, "list", "-o", "yaml")
    assert code == 0 and {s["id"] for s in yaml.safe_load(out)["items"]} == set(served.ids.values())
    code, out = run(served, "show", served.ids["get"], "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["session"]["id"] == served.ids["get"]
    for args in (["list", "-o", "xml"], ["list", "--outcome", "bogus"], ["export", "--outcome", "bogus"]):
        code, out = run(served, *args)
        assert code == 2 and "is not one of" in out, out


def test_show_prints_identity_and_timeline(served: Served) -> None:
    code, out = run(served, "show", served.ids["get"])
    assert code == 0, out
    assert "Target:     list pods -n default" in out
    assert "User:       idp#dev" in out and "Claims:     actor=dev" in out and "Source:     10.0.0.7" in out
    lines = [line for line in out.splitlines() if line.strip().startswith("+")]
    assert [line.split()[2] for line in lines] == ["session", "request", "response"]
    assert "GET /api/v1/namespaces/default/pods?limit=500" in lines[1]
    assert lines[2].split()[0] == "+1.500s"


def test_replay_plays_outputs_in_order_with_original_timing(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(sessions_cli.time, "sleep", pauses.append)
    code, out = run(served, "replay", served.ids["get"], "--speed", "2")
    assert code == 0, out
    assert out.startswith("$ kubectl get    # idp#dev on dev")
    assert out.index("> GET /api/v1/namespaces/default/pods?limit=500") < out.index("< 200 (500.0 ms)\nanswer-get")
    assert pauses == [0.0, 0.5, 0.25]  # 1 s and 0.5 s as recorded, at twice the speed


def test_export_jsonl(served: Served) -> None:
    code, out = run(served, "export", served.ids["delete"], "--format", "jsonl")
    assert code == 0, out
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [x["kind"] for x in lines] == ["session", "event", "event", "event"]
    code, out = run(served, "export")
    kinds = [orjson.loads(line)["kind"] for line in out.splitlines()]
    assert kinds.count("session") == 2 and kinds.count("event") == 6


def test_refusals_and_missing_tokens_are_reported(served: Served) -> None:
    code, out = run(served, "list", token="stale")
    assert code == 1 and "kubegate answered 401: kubegate refused the token: it has expired" in out
    code, out = run(served, "list", token="")
    assert code == 2 and "no token" in out
    code, out = run(served, "list", "--token", "", "--token-command", "echo auditor-token")
    assert code == 0, out
    code, out = run(served, "list", "--token", "", "--token-command", "no-such-command --flag")
    assert (code, out) == (1, "error: --token-command 'no-such-command --flag' cannot run: No such file or directory\n")


def test_an_unreachable_server_is_reported(served: Served) -> None:
    app = typer.Typer()
    sessions_cli.register(app)
    result = CliRunner().invoke(app, ["sessions", "list", "--server", "https://127.0.0.1:1", "--token", "x"])
    assert result.exit_code == 1 and "cannot reach kubegate at https://127.0.0.1:1" in result.output


def test_a_server_certificate_nobody_passed_a_ca_for_names_the_flag(served: Served) -> None:
    app = typer.Typer()
    sessions_cli.register(app)
    result = CliRunner().invoke(
        app, ["sessions", "list", "--server", served.url, "--token", "auditor-token"], env={"KUBEGATE_CA": ""}
    )
    assert result.exit_code == 1
    assert result.output == (
        f"error: cannot verify kubegate's certificate at {served.url} (self-signed "
        "certificate in certificate chain): pass --ca FILE (or set KUBEGATE_CA) with the CA "
        "that signed it\n"
    )


def test_a_saved_context_stands_in_for_every_flag(served: Served, isolated_context: Path) -> None:
    context.save_context({"server": served.url, "ca": str(served.ca), "token_command": "echo auditor-token"})
    app = typer.Typer()
    sessions_cli.register(app)
    result = CliRunner().invoke(
        app, ["sessions", "list", "-o", "json"], env={"KUBEGATE_SERVER": "", "KUBEGATE_CA": "", "KUBEGATE_TOKEN": ""}
    )
    assert result.exit_code == 0, result.output
    assert {s["id"] for s in orjson.loads(result.output)["items"]} == set(served.ids.values())
    result = CliRunner().invoke(app, ["sessions", "list", "--server", "https://127.0.0.1:1"])
    assert result.exit_code == 1 and "cannot reach kubegate at https://127.0.0.1:1" in result.output
