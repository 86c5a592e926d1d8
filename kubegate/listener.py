"""The HTTPS listener: configured certificate, or a CA and serving certificate kubegate makes itself."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from kubegate.app import GATEWAY, build_app
from kubegate.config import Config
from kubegate.mcp.loopback import Loopback
from kubegate.mcp.workers import Workers, share_sessions
from kubegate.tls import ensure_serving_cert, server_ssl_context

log = logging.getLogger(__name__)


@dataclass
class Listening:
    runner: web.AppRunner
    url: str
    ca_file: Path | None
    workers: Workers | None = None

    async def stop(self) -> None:
        await self.runner.cleanup()
        if self.workers is not None:
            await self.workers.stop()


def tls_files(config: Config) -> tuple[Path, Path, Path | None]:
    """(cert, key, CA to tell clients about); a self-made CA when none is configured."""
    if config.listen.tls is not None:
        return config.listen.tls.cert, config.listen.tls.key, None
    hosts = {config.listen.host, "127.0.0.1", "localhost"}
    if config.listen.host in ("0.0.0.0", "::", ""):
        hosts.discard(config.listen.host)
    files = ensure_serving_cert(config.state_dir / "tls", sorted(hosts))
    return files.cert, files.key, files.ca


async def start_gateway(config: Config, *, reuse_port: bool = False) -> Listening:
    """Build, start and bind kubegate; port 0 picks a free port (the URL says which).

    reuse_port binds with SO_REUSEPORT, so several worker processes share one port and the kernel
    spreads new connections across them (`kubegate serve --workers N`); such workers also share their
    MCP sessions (kubegate.mcp.workers), from before the port takes connections."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    cert, key, ca = tls_files(config)
    runner = web.AppRunner(build_app(config), handler_cancellation=True, access_log=None)
    await runner.setup()
    workers = await share_sessions(runner, config.state_dir) if reuse_port and config.mcp.enabled else None
    site = web.TCPSite(
        runner,
        config.listen.host,
        config.listen.port,
        ssl_context=server_ssl_context(cert, key),
        backlog=1024,
        reuse_port=reuse_port or None,
    )
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = config.listen.base_url(port)
    runner.app[GATEWAY].base_url = url
    # MCP tool calls go to the socket just bound, never to external_url (another hop, maybe another replica).
    runner.app[GATEWAY].loopback = Loopback(
        config.listen.model_copy(update={"external_url": None}).base_url(port), cert
    )
    if config.listen.external_url:
        log.info("approve commands and web sign-in redirects use listen.external_url %s", url)
    else:
        log.warning(
            "approve commands and web sign-in redirects use the listen address %s: set "
            "listen.external_url to the URL clients reach kubegate at",
            url,
        )
    return Listening(runner, url, ca, workers)
