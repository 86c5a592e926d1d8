"""`kubegate login`: remember which kubegate the admin commands talk to (server, CA, how to get a token,
and the kubegate.yaml for store commands), so `kubegate requests list` needs no flags afterwards.

The context file holds no token, only the command that prints one. Flags and KUBEGATE_* variables
still win over it. KUBEGATE_CONTEXT names another file (the demo writes its own).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

FIELDS = ("server", "ca", "token_command", "config")


def context_path() -> Path:
    """$KUBEGATE_CONTEXT, else $XDG_CONFIG_HOME/kubegate/context.yaml (~/.config/kubegate/context.yaml)."""
    if os.environ.get("KUBEGATE_CONTEXT"):
        return Path(os.environ["KUBEGATE_CONTEXT"])
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kubegate" / "context.yaml"


def load_context() -> dict[str, str]:
    """The saved context; empty when there is none. A damaged file is an error that names it."""
    path = context_path()
    try:
        doc: Any = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        raise ContextError(
            f"cannot read the kubegate context {path}: {exc}; fix it or run `kubegate login` again"
        ) from None
    if not isinstance(doc, dict):
        raise ContextError(f"the kubegate context {path} is not a mapping; run `kubegate login` again")
    return {k: str(v) for k, v in doc.items() if k in FIELDS and v}


class ContextError(Exception):
    """The context file cannot be used; str() names it and what to do."""


def save_context(values: dict[str, str], path: Path | None = None) -> Path:
    path = path or context_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({k: values[k] for k in FIELDS if values.get(k)}, sort_keys=False))
    path.chmod(0o600)
    return path


def login(
    server: Annotated[str, typer.Option(help="kubegate URL, https://HOST:PORT")],
    ca: Annotated[Path | None, typer.Option(help="CA bundle that signed kubegate's certificate")] = None,
    token_command: Annotated[str | None, typer.Option(help="a command that prints your OIDC token")] = None,
    config: Annotated[Path | None, typer.Option(help="kubegate.yaml, for store commands (audit verify, db)")] = None,
) -> None:
    """Save server, CA, token command and config as the defaults of every admin command."""
    values = {
        "server": server.rstrip("/"),
        "ca": str(ca.resolve()) if ca else "",
        "token_command": token_command or "",
        "config": str(config.resolve()) if config else "",
    }
    try:
        path = save_context(values)
    except OSError as exc:
        typer.echo(
            f"error: cannot save the kubegate context at {context_path()}: {exc.strerror}; set "
            "KUBEGATE_CONTEXT to a writable file",
            err=True,
        )
        raise typer.Exit(1) from None
    typer.echo(f"saved {path}: kubegate commands now default to {values['server']}")


def register(app: typer.Typer) -> None:
    app.command()(login)
