"""`kubegate demo`: the sandbox cluster, development issuer and gateway on loopback, ready for kubectl.

Its printout is the whole manual: one export line (PATH, KUBECONFIG and the reviewer's kubegate context)
after which every command it lists runs without a flag. A second demo never touches a running demo's
state (a lock on the state directory) and says which port is busy and which flag picks another.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import shlex
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from kubegate.cli.client import fail
from kubegate.cli.context import save_context
from kubegate.cli.invocation import kubegate_command
from kubegate.cli.serve import install_loop, wait_for_signal
from kubegate.config import DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from kubegate.sandbox.environment import Environment


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[TextIO]:
    """Hold the state directory for this demo's lifetime (the kernel drops the lock if it dies)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "demo.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            pid = lock.read().strip() or "?"
            raise fail(
                f"a kubegate demo (pid {pid}) is already running with its state in {state_dir}; use it, stop "
                "it with Ctrl-C, or start another with --state-dir OTHER_DIR --port 0"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield lock


def busy_port(port: int) -> typer.Exit:
    return fail(
        f"port {port} on 127.0.0.1 is busy (another demo or server listens there); pass --port N, or "
        "--port 0 for any free port"
    )


def check_port(port: int) -> None:
    """Refuse a busy port before anything is written."""
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise busy_port(port) from None
            raise fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pass --port N") from None


def export_line(kubeconfig: Path, context: Path) -> str:
    """PATH gets the directory of this kubegate (scripts/demo installs it into .venv/bin, not on PATH)."""
    bin_dir = Path(kubegate_command()[0]).parent
    return (
        f'export PATH={shlex.quote(str(bin_dir))}:"$PATH" KUBECONFIG={shlex.quote(str(kubeconfig))} '
        f"KUBEGATE_CONTEXT={shlex.quote(str(context))}"
    )


def demo(
    state_dir: Annotated[Path, typer.Option(help="Where the demo keeps its store, keys and kubeconfig")] = (
        DEFAULT_STATE_DIR / "demo"
    ),
    port: Annotated[int, typer.Option(help="Gateway port (0: any free port)")] = 8443,
    user: Annotated[str, typer.Option(help="Subject of the demo identity")] = "demo",
    group: Annotated[list[str] | None, typer.Option(help="Groups of the demo identity; repeat")] = None,
) -> None:
    """Start the demo and print how to point kubectl at it; runs until Ctrl-C."""
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kubegate.sandbox.environment import DEMO_GROUPS, start_environment

    async def run() -> None:
        try:
            env = await start_environment(state_dir, listen=f"127.0.0.1:{port}")
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise busy_port(port) from None
            raise
        try:
            kubeconfig = env.write_kubeconfig(
                state_dir / "kubeconfig", sub=user, groups=tuple(group) if group else DEMO_GROUPS
            )
            assert env.gateway is not None
            as_oncall = shlex.join(
                [
                    *kubegate_command(),
                    "sandbox",
                    "token",
                    "--issuer",
                    env.issuer.url,
                    "--ca",
                    str(env.issuer.ca_file),
                    "--sub",
                    "oncall",
                    "--group",
                    "platform-oncall",
                    "--group",
                    "auditors",
                ]
            )
            context = save_context(
                {
                    "server": env.gateway.url,
                    "ca": str(env.gateway.ca_file),
                    "token_command": as_oncall,
                    "config": str(env.config_file),
                },
                state_dir / "context.yaml",
            )
            typer.echo(printout(state_dir, env, kubeconfig, context))
            await wait_for_signal()
        finally:
            await env.stop()

    check_port(port)
    with state_lock(state_dir):
        install_loop()
        asyncio.run(run())


def printout(state_dir: Path, env: Environment, kubeconfig: Path, context: Path) -> str:
    assert env.gateway is not None
    gateway = env.gateway.url
    return f"""kubegate demo is running (state in {state_dir}).

  gateway:         {gateway}
  web UI:          {gateway}/ui/   (sign in as oncall, groups platform-oncall and auditors, to approve and audit)
  sandbox cluster: {env.cluster.url}   (kubegate's connection "sandbox")
  OIDC issuer:     {env.issuer.url}
  config:          {env.config_file}

In each terminal you use (kubectl as the demo user; kubegate commands as the reviewer oncall):

  {export_line(kubeconfig, context)}

Then try:

  kubectl get namespaces
  kubectl create secret generic db --from-literal=password=s3cr3t
  kubectl get secret db -o yaml                 # values masked by kubegate
  kubectl run web --image=nginx && kubectl exec web -- env
  kubectl delete configmap -n kube-system x     # denied by policy
  kubectl auth whoami                           # the identity the cluster sees
  kubectl create namespace tmp && kubegate run -- kubectl delete namespace tmp
                                                # waits for a reviewer; `kubegate run` prints the request id

Approve from another terminal (after the same export line), or in the web UI:

  kubegate requests list
  kubegate requests approve ID
  kubegate sessions list                        # what was run, by whom
  kubegate audit verify                         # the recording's hash chain is intact

Press Ctrl-C to stop."""


def register(app: typer.Typer) -> None:
    app.command()(demo)
