"""The root command and its groups, with kubegate's CLI conventions, the same for every group."""

from __future__ import annotations

from typing import Annotated

import typer

from kubegate import __version__

HELP = "An access gateway between AI agents, people and Kubernetes."


def command_group(help: str) -> typer.Typer:
    """No arguments prints the help; help text is plain, not rich markup (`[/SUBRESOURCE]` is a
    placeholder, not a closing tag)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


def root() -> typer.Typer:
    """`kubegate`, with --version and typer's --install-completion / --show-completion."""
    app = typer.Typer(
        name="kubegate", help=HELP, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None
    )
    app.callback()(_root_options)
    return app


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"kubegate {__version__}")
        raise typer.Exit()


def _root_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print kubegate's version and exit."),
    ] = False,
) -> None:
    """An access gateway between AI agents, people and Kubernetes."""
