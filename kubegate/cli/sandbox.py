"""`kubegate sandbox ...`: helpers for the built-in sandbox; `token` prints a development-issuer token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubegate.cli.groups import command_group
from kubegate.cli.token import TokenSourceError, dev_issuer_token, parse_claims
from kubegate.durations import parse_duration

sandbox_app = command_group("The built-in sandbox: development tokens and the sandbox cluster.")


@sandbox_app.command("token")
def token(
    issuer: Annotated[str, typer.Option("--issuer", metavar="URL", help="The development issuer's URL.")],
    sub: Annotated[str, typer.Option("--sub", help="Subject of the token.")],
    group: Annotated[list[str] | None, typer.Option("--group", help="Group; repeat.")] = None,
    claim: Annotated[
        list[str] | None, typer.Option("--claim", metavar="NAME=VALUE", help="Extra claim; repeat.")
    ] = None,
    lifetime: Annotated[str, typer.Option("--lifetime", help="Lifetime such as 30m or 1h.")] = "1h",
    audience: Annotated[str, typer.Option("--audience", help="Token audience.")] = "kubegate",
    ca: Annotated[
        Path | None, typer.Option("--ca", metavar="FILE", help="CA certificate of the development issuer.")
    ] = None,
) -> None:
    """Print a bare token from the development issuer (for scripts: TOKEN=$(kubegate sandbox token ...))."""
    try:
        seconds = parse_duration(lifetime)
    except ValueError as exc:
        typer.echo(f"kubegate sandbox token: --lifetime: {exc}", err=True)
        raise typer.Exit(1) from None
    try:
        value = dev_issuer_token(issuer, sub, group or [], parse_claims(claim or []), seconds, audience, ca)
    except TokenSourceError as exc:
        typer.echo(f"kubegate sandbox token: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(value)


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
