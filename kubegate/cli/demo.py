"""`kubegate demo`: the sandbox cluster, development issuer and gateway on loopback, ready for kubectl."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

from kubegate.cli.serve import install_loop, wait_for_signal
from kubegate.config import DEFAULT_STATE_DIR


def demo(
    state_dir: Annotated[Path, typer.Option(help="Where the demo keeps its store, keys and kubeconfig")] = (
        DEFAULT_STATE_DIR / "demo"),
    port: Annotated[int, typer.Option(help="Gateway port (0: any free port)")] = 8443,
    user: Annotated[str, typer.Option(help="Subject of the demo identity")] = "demo",
    group: Annotated[list[str] | None, typer.Option(help="Groups of the demo identity; repeat")] = None,
) -> None:
    """Start the demo and print how to point kubectl at it; runs until Ctrl-C."""
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from kubegate.sandbox.environment import DEMO_GROUPS, start_environment

    async def run() -> None:
        env = await start_environment(state_dir, listen=f"127.0.0.1:{port}")
        kubeconfig = env.write_kubeconfig(state_dir / "kubeconfig", sub=user,
                                          groups=tuple(group) if group else DEMO_GROUPS)
        gateway = env.gateway.url if env.gateway else ""
        ca = env.gateway.ca_file if env.gateway else ""
        as_oncall = (f"kubegate sandbox token --issuer {env.issuer.url} --ca {env.issuer.ca_file} "
                     "--sub oncall --group platform-oncall --group auditors")
        typer.echo(f"""kubegate demo is running (state in {state_dir}).

  gateway:         {gateway}
  web UI:          {gateway}/ui/   (sign in as oncall, groups platform-oncall and auditors, to approve and audit)
  sandbox cluster: {env.cluster.url}   (kubegate's connection "sandbox")
  OIDC issuer:     {env.issuer.url}
  config:          {env.config_file}

Point kubectl at it:

  export KUBECONFIG={kubeconfig}

Then try:

  kubectl get namespaces
  kubectl create secret generic db --from-literal=password=s3cr3t
  kubectl get secret db -o yaml                 # values masked by kubegate
  kubectl run web --image=nginx && kubectl exec web -- env
  kubectl delete configmap -n kube-system x     # denied by policy
  kubectl auth whoami                           # the identity the cluster sees
  kubectl create namespace tmp && kubegate run -- kubectl delete namespace tmp
                                                # waits for a reviewer; `kubegate run` prints the request id

Approve as a reviewer, from another terminal (or in the web UI):

  export KUBEGATE_SERVER={gateway} KUBEGATE_CA={ca}
  export KUBEGATE_TOKEN=$({as_oncall})
  kubegate requests list
  kubegate requests approve ID
  kubegate sessions list                        # what was run, by whom

Press Ctrl-C to stop.""")
        try:
            await wait_for_signal()
        finally:
            await env.stop()

    install_loop()
    asyncio.run(run())


def register(app: typer.Typer) -> None:
    app.command()(demo)
