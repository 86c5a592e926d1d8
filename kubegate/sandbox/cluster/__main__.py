"""`python -m kubegate.sandbox.cluster`: run the sandbox cluster by hand and print how to reach it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from .cluster import SandboxCluster


async def _serve(args: argparse.Namespace) -> None:
    cluster = SandboxCluster(Path(args.state_dir), host=args.host, port=args.port)
    await cluster.start()
    admin = cluster.write_kubeconfig(Path(args.state_dir) / "admin.kubeconfig", cluster.admin_token)
    gateway = cluster.write_kubeconfig(Path(args.state_dir) / "gateway.kubeconfig")
    print(f"url:                {cluster.url}")
    print(f"ca:                 {cluster.ca_file}")
    print(f"admin token:        {cluster.admin_token}")
    print(f"gateway token:      {cluster.gateway_token}")
    print(f"admin kubeconfig:   {admin}")
    print(f"gateway kubeconfig: {gateway}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kubegate.sandbox.cluster", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state-dir", default=".kubegate-sandbox", help="where certificates and kubeconfigs go")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
