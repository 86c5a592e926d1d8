"""`kubegate db upgrade`: bring the store's schema to the newest revision (kubegate serve does it too)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from kubegate.cli.context import ContextError, load_context
from kubegate.cli.groups import command_group
from kubegate.config import Config, load_config
from kubegate.configbase import ConfigError
from kubegate.store.engine import Store, StoreError

db_app = command_group("Manage kubegate's database.")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar="KUBEGATE_CONFIG", help="kubegate.yaml (its store.url; default: from `kubegate login`)"
    ),
]
StoreUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--store-url", envvar="KUBEGATE_STORE_URL", help="sqlite:///PATH or postgresql://...; overrides --config"
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True, highlight=False).print(f"error: {message}", markup=False)
    return typer.Exit(code)


def resolve_store_url(config: Path | None, store_url: str | None) -> str:
    """--store-url, else the config's store (--config or the `kubegate login` context's), else the default
    SQLite file in the state directory."""
    if store_url:
        return store_url
    try:
        config = config or (Path(c) if (c := load_context().get("config")) else None)
    except ContextError as exc:
        raise fail(str(exc)) from exc
    try:
        return (load_config(config) if config else Config()).store_url
    except ConfigError as exc:
        raise fail(str(exc)) from exc


@db_app.command("upgrade")
def upgrade(config: ConfigOpt = None, store_url: StoreUrlOpt = None) -> None:
    """Run the database migrations up to the newest revision."""
    url = resolve_store_url(config, store_url)

    async def run() -> tuple[str, str | None]:
        store = await Store.open(url)
        try:
            return store.display_url, await store.revision()
        finally:
            await store.close()

    try:
        where, revision = asyncio.run(run())
    except StoreError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"store {where} is at revision {revision}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
