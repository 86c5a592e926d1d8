"""kubegate as a benchmark target, with the full pipeline or identity only.

The full pipeline is exactly what `kubegate serve` runs. "identity" keeps what every request pays
before any decision (metrics, authentication, request info) and drops policy, approvals, recording
and masking: it tells how much of kubegate's cost is the proxy itself and how much its stages. It is
built here, through the Gateway's public `pipeline`, so that no configuration can ever turn
kubegate's policy or recording off.

Run (the harness does): python -m bench.gateway --config kubegate.yaml --pipeline identity
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from kubegate.app import GATEWAY, Gateway
from kubegate.cli.serve import install_loop, wait_for_signal
from kubegate.config import load_config
from kubegate.identity.stage import AuthenticationStage
from kubegate.kube.stage import RequestInfoStage
from kubegate.listener import start_gateway
from kubegate.metrics import MetricsStage
from kubegate.proxy.pipeline import Pipeline


def identity_pipeline(gateway: Gateway) -> Pipeline:
    return Pipeline([MetricsStage(gateway.metrics), AuthenticationStage(gateway.verifier), RequestInfoStage()])


async def run(config: Path, pipeline: str) -> None:
    listening = await start_gateway(load_config(config))
    if pipeline == "identity":
        gateway = listening.runner.app[GATEWAY]
        gateway.pipeline = identity_pipeline(gateway)
    print(f"kubegate listening on {listening.url}", flush=True)
    try:
        await wait_for_signal()
    finally:
        await listening.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--pipeline", choices=("full", "identity"), default="full")
    args = parser.parse_args()
    install_loop()
    asyncio.run(run(args.config, args.pipeline))


if __name__ == "__main__":
    main()
