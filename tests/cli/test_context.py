"""`kubegate login` and the context file the admin commands fall back on."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from kubegate.cli import context
from kubegate.cli.context import ContextError, context_path, load_context


def test_login_saves_a_private_context_without_a_token(isolated_context: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    context.register(app)
    app.command("noop")(lambda: None)
    (tmp_path / "ca.crt").write_text("ca")
    result = CliRunner().invoke(
        app,
        [
            "login",
            "--server",
            "https://kubegate.example:8443/",
            "--ca",
            str(tmp_path / "ca.crt"),
            "--token-command",
            "kubegate sandbox token --sub x",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"saved {isolated_context}" in result.output
    assert yaml.safe_load(isolated_context.read_text()) == {
        "server": "https://kubegate.example:8443",
        "ca": str(tmp_path / "ca.crt"),
        "token_command": "kubegate sandbox token --sub x",
    }
    assert isolated_context.stat().st_mode & 0o777 == 0o600
    assert load_context()["server"] == "https://kubegate.example:8443"


def test_the_default_place_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBEGATE_CONTEXT")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert context_path() == tmp_path / "kubegate" / "context.yaml"
    assert load_context() == {}


@pytest.mark.parametrize("text", ["[1, 2]", "server: [unclosed"])
def test_a_damaged_context_names_its_file(isolated_context: Path, text: str) -> None:
    isolated_context.parent.mkdir(parents=True)
    isolated_context.write_text(text)
    with pytest.raises(ContextError, match=str(isolated_context)):
        load_context()


def test_login_says_where_it_cannot_write(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("KUBEGATE_CONTEXT", str(tmp_path / "file" / "context.yaml"))
    app = typer.Typer()
    context.register(app)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["login", "--server", "https://k"])
    assert result.exit_code == 1
    assert "cannot save the kubegate context at" in result.output and "set KUBEGATE_CONTEXT" in result.output
