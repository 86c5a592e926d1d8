"""Entry point: assembles the command groups into one `kubegate` command.

`kubegate token` is kubectl's credential plugin, run on every kubectl call: it is dispatched before typer
and the other command modules are imported, which would cost it most of a second.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


def build_app() -> typer.Typer:
    from kubegate.cli import (
        audit,
        context,
        db,
        demo,
        kubeconfig,
        policy,
        requests,
        run,
        sandbox,
        serve,
        sessions,
        token,
    )
    from kubegate.cli.groups import root

    app = root()
    for module in (serve, demo, kubeconfig, token, run, context, sandbox, policy, sessions, requests, audit, db):
        module.register(app)
    return app


def main() -> None:
    if sys.argv[1:2] == ["token"]:
        from kubegate.cli.plugin import main as token_main

        sys.exit(token_main(sys.argv[2:]))
    build_app()()
