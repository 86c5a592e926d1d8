"""Entry point: assembles the command groups into one `kubegate` command."""

from __future__ import annotations

from typing import Annotated

import typer

import kubegate

app = typer.Typer(
    name="kubegate",
    help="An access gateway between AI agents, people and Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"kubegate {kubegate.__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                                   help="Print kubegate's version and exit.")] = False) -> None:
    """An access gateway between AI agents, people and Kubernetes."""


def _register() -> None:
    from kubegate.cli import audit, db, demo, kubeconfig, policy, requests, sandbox, serve, sessions, token

    for module in (serve, demo, kubeconfig, token, sandbox, policy, sessions, requests, audit, db):
        module.register(app)


def main() -> None:
    _register()
    app()
