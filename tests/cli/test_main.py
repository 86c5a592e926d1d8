"""The assembled `kubegate` command: every help page renders, --version, completion, plain errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from kubegate import __version__
from kubegate.cli.main import build_app


def command_paths() -> Iterator[list[str]]:
    def walk(command: typer.core.TyperGroup | typer.core.TyperCommand, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(get_command(build_app()), [])


@pytest.mark.parametrize("path", list(command_paths()), ids=lambda p: " ".join(p) or "kubegate")
def test_every_help_page_renders(path: list[str]) -> None:
    result = CliRunner().invoke(build_app(), [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output or "usage:" in result.output


def test_version_and_completion() -> None:
    assert CliRunner().invoke(build_app(), ["--version"]).output == f"kubegate {__version__}\n"
    result = CliRunner().invoke(build_app(), ["--show-completion", "bash"], env={"SHELL": "/bin/bash"})
    assert result.exit_code == 0 and "_kubegate_completion" in result.output


def test_the_installed_script_answers_version() -> None:
    done = subprocess.run([sys.executable, "-m", "kubegate", "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, f"kubegate {__version__}\n")
