"""Entry point: assembles the command groups into one `kubegate` command."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="kubegate",
    help="An access gateway between AI agents, people and Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from kubegate.cli import audit, db, demo, kubeconfig, policy, requests, sandbox, serve, sessions, token

    for module in (serve, demo, kubeconfig, token, sandbox, policy, sessions, requests, audit, db):
        module.register(app)


def main() -> None:
    _register()
    app()
