"""`kubegate serve`: run the gateway from a config file until interrupted."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from kubegate.config import ConfigError, load_config


def install_loop() -> None:
    """uvloop where available: the proxy's hot path is socket I/O."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def serve(config: Annotated[Path, typer.Option("--config", "-c", help="kubegate.yaml")],
          log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info") -> None:
    """Run the gateway."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"kubegate: invalid configuration\n{exc}", err=True)
        raise typer.Exit(2) from exc

    from kubegate.listener import start_gateway

    async def run() -> None:
        listening = await start_gateway(cfg)
        typer.echo(f"kubegate listening on {listening.url}", err=True)
        for name in sorted(c.name for c in cfg.connections):
            typer.echo(f"  connection {name}: server {listening.url}/k8s/{name}", err=True)
        if listening.ca_file:
            typer.echo(f"  clients trust the CA at {listening.ca_file}", err=True)
        try:
            await wait_for_signal()
        finally:
            await listening.stop()

    install_loop()
    asyncio.run(run())


def register(app: typer.Typer) -> None:
    app.command()(serve)
