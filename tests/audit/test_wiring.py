"""The gateway's audit parts from `audit:`: a key that cannot be used stops startup naming the field; what
anchoring and each sink are doing shows in /readyz."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from kubegate.app import GATEWAY, build_app
from kubegate.audit.config import AuditConfig
from kubegate.audit.signing import generate
from kubegate.audit.wiring import AuditServices
from kubegate.config import Config
from kubegate.configbase import ConfigError
from kubegate.store.engine import Store
from tests.audit.builders import receiver, record_requests


async def test_a_signing_key_that_cannot_be_read_names_the_field(store: Store, tmp_path: Path) -> None:
    config = AuditConfig.model_validate(
        {"signing": {"key_file": tmp_path / "gone.pem"}, "anchors": {"webhook": {"url": "https://hook.example"}}}
    )
    with pytest.raises(ConfigError, match=r"audit\.signing\.key_file: .*gone\.pem: cannot read the signing key"):
        AuditServices.from_config(config, store, CollectorRegistry())


async def test_readyz_shows_anchoring_and_each_sink(tmp_path: Path) -> None:
    generate(tmp_path / "k.pem")
    async with receiver() as hook:
        hook.failures = 1_000
        config = Config.model_validate(
            {
                "state_dir": tmp_path,
                "audit": {
                    "signing": {"key_file": tmp_path / "k.pem"},
                    "checkpoint_interval": "20ms",
                    "anchors": {"webhook": {"url": hook.url}},
                    "export": {
                        "interval": "20ms",
                        "retry_max_interval": "20ms",
                        "lag_alarm": 1,
                        "sinks": [
                            {"name": "down", "type": "webhook", "url": hook.url},
                            {"name": "file", "type": "file", "path": tmp_path / "a.jsonl"},
                        ],
                    },
                },
            }
        )
        app = build_app(config)
        async with TestClient(TestServer(app)) as client:
            gateway = app[GATEWAY]
            await record_requests(gateway.store, 2, recorder=gateway.recorder)
            async with asyncio.timeout(10):
                while True:
                    checks = (await (await client.get("/readyz")).json())["checks"]
                    export = checks["export"]
                    down = export["down"]
                    down_failed = down["state"] == "failing" and down["lag"] == 5  # lagging until an attempt fails
                    if export["file"]["lag"] == 0 and down_failed and "problems" in checks["anchoring"]:
                        break
                    await asyncio.sleep(0.02)
            assert checks["anchoring"]["problems"] == {"webhook": "the checkpoint webhook answered HTTP 503"}
            assert checks["export"]["down"] == {"state": "failing", "lag": 5, "error": "the webhook answered HTTP 503"}
            assert checks["export"]["file"] == {"state": "ok", "lag": 0}
            metrics = await (await client.get("/metrics")).text()
            assert 'kubegate_export_lag_events{sink="down"} 5.0' in metrics
