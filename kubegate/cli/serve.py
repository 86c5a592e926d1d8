"""`kubegate serve`: run the gateway from a config file until interrupted.

With `--workers N` the gateway runs as N processes sharing one port (SO_REUSEPORT: the kernel
spreads connections across them), which uses more than one core. Each worker is a full gateway,
like a replica: its own token cache, policy reload, recorder and metrics. The store keeps them
consistent (the hash chain is appended under the store's write lock, kubectl sessions are shared
through the store, approvals are re-read from it), and an MCP session opened on one worker is reached from
every other (kubegate.mcp.workers). Per worker: /metrics counts only the requests
that worker served, and a client without Kubectl-Session headers may get one session per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from kubegate.config import Config, ListenConfig, load_config, policy_engine
from kubegate.configbase import ConfigError
from kubegate.upstream.credentials import CredentialError


def install_loop() -> None:
    """uvloop where available: the proxy's hot path is socket I/O."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def raise_open_files_limit() -> None:
    """Every watch holds two sockets; take the hard limit on open files, as Go programs do by default."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def announce(url: str, ca_file: Path | None, config: Config, workers: int = 1) -> None:
    typer.echo(f"kubegate listening on {url}" + (f" ({workers} workers)" if workers > 1 else ""), err=True)
    for name in sorted(c.name for c in config.connections):
        typer.echo(f"  connection {name}: server {url}/k8s/{name}", err=True)
    if ca_file:
        typer.echo(f"  clients trust the CA at {ca_file}", err=True)


async def run_gateway(config: Config, *, reuse_port: bool = False, ready_fd: int | None = None) -> None:
    """Serve until SIGINT or SIGTERM. A worker reports its URL on `ready_fd` instead of announcing."""
    from kubegate.listener import start_gateway

    listening = await start_gateway(config, reuse_port=reuse_port)
    if ready_fd is None:
        announce(listening.url, listening.ca_file, config)
    else:
        os.write(ready_fd, listening.url.encode() + b"\n")
        os.close(ready_fd)
    try:
        await wait_for_signal()
    finally:
        await listening.stop()


def _reserve_port(listen: ListenConfig) -> tuple[socket.socket, ListenConfig]:
    """Bind (not listen) the port with SO_REUSEPORT, so port 0 becomes one port every worker shares and
    no other program takes it between workers. A socket that does not listen is never given connections."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((listen.host, listen.port))
    port = sock.getsockname()[1]
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    return sock, listen.model_copy(update={"address": f"{host}:{port}"})


def _start_worker(config: Config, reservation: socket.socket) -> tuple[int, str]:
    """Fork one worker and wait until it listens (or fails); returns its pid and URL."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the supervisor's handler
        signal.signal(signal.SIGINT, signal.default_int_handler)
        reservation.close()
        os.close(read_fd)
        code = 0
        try:
            install_loop()
            asyncio.run(run_gateway(config, reuse_port=True, ready_fd=write_fd))
        except BaseException:
            logging.getLogger(__name__).exception("kubegate worker %d failed", os.getpid())
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as ready:
        url = ready.readline().decode().strip()
    if not url:
        os.waitpid(pid, 0)
        raise RuntimeError("a kubegate worker failed to start (see the log above)")
    return pid, url


def run_workers(config: Config, workers: int) -> int:
    """Start the workers one after another (the first one migrates the store and makes the TLS files),
    then supervise: a signal stops them all; a worker that dies on its own stops the rest (exit code 1)."""
    from kubegate.listener import tls_files
    from kubegate.mcp.workers import reset

    reset(config.state_dir)
    reservation, listen = _reserve_port(config.listen)
    config = config.model_copy(update={"listen": listen})
    pids: list[int] = []
    stopping = failed = False

    def stop(_signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        url = ""
        while len(pids) < workers and not stopping:
            pid, url = _start_worker(config, reservation)
            pids.append(pid)
        if stopping:
            stop()
        else:
            announce(url, tls_files(config)[2], config, workers)
    except RuntimeError as exc:
        typer.echo(f"kubegate: {exc}", err=True)
        failed = True
        stop()
    finally:
        reservation.close()
    while pids:
        pid, status = os.wait()
        if pid not in pids:
            continue
        pids.remove(pid)
        if not stopping:
            typer.echo(
                f"kubegate: worker {pid} exited with code {os.waitstatus_to_exitcode(status)}; stopping the others",
                err=True,
            )
            failed = True
            stop()
    return 1 if failed else 0


def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="kubegate.yaml")],
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="processes sharing the port (SO_REUSEPORT), to use more cores; each keeps its own "
            "token cache and /metrics",
        ),
    ] = 1,
) -> None:
    """Run the gateway."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        cfg = load_config(config)
        policy_engine(cfg, config)  # policies and policy_dirs, checked against the issuers
    except ConfigError as exc:
        typer.echo(f"kubegate: invalid configuration\n{exc}", err=True)
        raise typer.Exit(2) from exc
    raise_open_files_limit()
    if workers > 1:
        sys.exit(run_workers(cfg, workers))
    install_loop()
    try:
        asyncio.run(run_gateway(cfg))
    except CredentialError as exc:  # a connection kubegate cannot even set up, such as in_cluster outside a pod
        typer.echo(f"kubegate: {exc}", err=True)
        raise typer.Exit(2) from exc


def register(app: typer.Typer) -> None:
    app.command()(serve)
