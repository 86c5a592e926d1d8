"""`kubegate kubeconfig`: a kubeconfig for a CI job or a person, pointing kubectl at kubegate."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from kubegate.cli.invocation import kubegate_command


def kubeconfig(
    server: Annotated[str, typer.Option(help="kubegate's URL, e.g. https://kubegate.example.com")],
    connection: Annotated[str, typer.Option(help="The kubegate connection (cluster) to use")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")] = None,
    ca: Annotated[Path | None, typer.Option(help="CA certificate that signed kubegate's serving certificate")] = None,
    namespace: Annotated[str | None, typer.Option(help="Default namespace")] = None,
    github_actions: Annotated[bool, typer.Option(help="Get the token from GitHub Actions' OIDC provider")] = False,
    audience: Annotated[str, typer.Option(help="Token audience (with --github-actions)")] = "kubegate",
    token_env: Annotated[str | None, typer.Option(help="Read the token from this environment variable")] = None,
    token_file: Annotated[Path | None, typer.Option(help="Read the token from this file")] = None,
) -> None:
    """Write a kubeconfig whose user gets its OIDC token through `kubegate token`."""
    argv = kubegate_command()
    args = [*argv[1:], "token"]
    if github_actions:
        args += ["--github-actions", "--audience", audience]
    elif token_env:
        args += ["--from-env", token_env]
    elif token_file:
        args += ["--from-file", str(token_file.resolve())]
    else:
        typer.echo("kubegate kubeconfig: choose a token source: --github-actions, --token-env or --token-file",
                   err=True)
        raise typer.Exit(2)
    cluster: dict[str, object] = {"server": f"{server.rstrip('/')}/k8s/{connection}"}
    if ca is not None:
        cluster["certificate-authority"] = str(ca.resolve())
    context: dict[str, object] = {"cluster": "kubegate", "user": "kubegate"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "kubegate",
        "clusters": [{"name": "kubegate", "cluster": cluster}],
        "users": [{"name": "kubegate", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1", "command": argv[0], "args": args,
            "interactiveMode": "Never"}}}],
        "contexts": [{"name": "kubegate", "context": context}],
    }
    text = yaml.safe_dump(doc, sort_keys=False)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        output.chmod(0o600)
        typer.echo(f"wrote {output}; export KUBECONFIG={output.resolve()}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(kubeconfig)
