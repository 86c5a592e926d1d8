"""`kubegate kubeconfig`: a kubeconfig for a CI job or a person, pointing kubectl at kubegate.

Its token flags are `kubegate token`'s own (--github-actions, --from-env, --from-file, --audience), which
it writes into the kubeconfig's exec plugin; with --token-file the kubeconfig's user reads a file instead
(`tokenFile`), which this command fills now, so a CI job's kubectl calls start no plugin process."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from kubegate.cli import token as token_command
from kubegate.cli.invocation import token_plugin


def kubeconfig(
    server: Annotated[str, typer.Option(help="kubegate's URL, e.g. https://kubegate.example.com")],
    connection: Annotated[str, typer.Option(help="The kubegate connection (cluster) to use")],
    file: Annotated[Path | None, typer.Option("--file", help="File to write (default: stdout)")] = None,
    ca: Annotated[Path | None, typer.Option(help="CA certificate that signed kubegate's serving certificate")] = None,
    namespace: Annotated[str | None, typer.Option(help="Default namespace")] = None,
    github_actions: Annotated[bool, typer.Option(help="Get the token from GitHub Actions' OIDC provider")] = False,
    audience: Annotated[str, typer.Option(help="Token audience (with --github-actions)")] = "kubegate",
    from_env: Annotated[
        str | None, typer.Option("--from-env", metavar="VAR", help="Read the token from this environment variable")
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", metavar="PATH", help="Read the token from this file")
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="PATH",
            help="Write the token to this private file now and have kubectl read it (tokenFile) instead of "
            "running `kubegate token` on every call; keep it fresh with `kubegate token ... --write-file PATH "
            "--keep-fresh &`",
        ),
    ] = None,
) -> None:
    """Write a kubeconfig whose user gets its OIDC token through `kubegate token` (or a token file)."""
    if github_actions:
        source = ["--github-actions", "--audience", audience]
    elif from_env:
        source = ["--from-env", from_env]
    elif from_file:
        source = ["--from-file", str(from_file.resolve())]
    else:
        typer.echo("kubegate kubeconfig: choose a token source: --github-actions, --from-env or --from-file", err=True)
        raise typer.Exit(2)
    user: dict[str, object]
    if token_file is not None and from_file is not None:
        typer.echo(
            "kubegate kubeconfig: --token-file copies a token from --github-actions or --from-env; a token that "
            f"is in a file already needs no copy: use --from-file {from_file} alone",
            err=True,
        )
        raise typer.Exit(2)
    if token_file is not None:
        code = token_command.main([*source, "--write-file", str(token_file)])
        if code:
            raise typer.Exit(code)
        user = {"tokenFile": str(token_file.resolve())}
    else:
        user = {"exec": token_plugin(source)}
    cluster: dict[str, object] = {"server": f"{server.rstrip('/')}/k8s/{connection}"}
    if ca is not None:
        cluster["certificate-authority"] = str(ca.resolve())
    context: dict[str, object] = {"cluster": "kubegate", "user": "kubegate"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kubegate",
        "clusters": [{"name": "kubegate", "cluster": cluster}],
        "users": [{"name": "kubegate", "user": user}],
        "contexts": [{"name": "kubegate", "context": context}],
    }
    text = yaml.safe_dump(doc, sort_keys=False)
    if file is None:
        sys.stdout.write(text)
    else:
        try:
            file.write_text(text)
            file.chmod(0o600)
        except OSError as exc:
            typer.echo(f"kubegate kubeconfig: cannot write {file}: {exc.strerror}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"wrote {file}; export KUBECONFIG={file.resolve()}", err=True)


def register(app: typer.Typer) -> None:
    app.command()(kubeconfig)
