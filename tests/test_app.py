"""What loading the gateway costs: heavy libraries only some deployments need are imported on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kubegate.app import Gateway
from kubegate.config import Config
from kubegate.masking.marker import MARKER

OPTIONAL = ("alembic", "asyncpg", "cel", "botocore", "boto3", "opentelemetry")


def test_the_gateway_loads_without_the_optional_libraries() -> None:
    """alembic (schema behind), asyncpg (PostgreSQL), cel (CEL conditions), botocore (EKS): ~20 MB a
    SQLite gateway without CEL rules or EKS connections never pays."""
    code = (
        "import sys, kubegate.app, kubegate.cli.serve, kubegate.policy.engine, kubegate.approvals.signals; "
        f"print([m for m in {OPTIONAL!r} if m in sys.modules])"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_mcp_endpoint_is_served_unless_disabled() -> None:
    """With `mcp.enabled: false` there is no /mcp route; either way the MCP SDK is not imported before the first
    request to /mcp (tests/mcp/test_endpoint.py serves such requests)."""
    code = (
        "import sys; from kubegate.app import build_app; from kubegate.config import Config; "
        "enabled = '{enabled}' == 'True'; "
        "app = build_app(Config.model_validate({{'mcp': {{'enabled': enabled}}}})); "
        "print(sorted({{r.canonical for r in app.router.resources()}} & {{'/mcp', "
        "'/.well-known/oauth-protected-resource'}}), 'mcp' in sys.modules)"
    )
    for enabled, expected in ((True, "['/.well-known/oauth-protected-resource', '/mcp'] False"), (False, "[] False")):
        out = subprocess.run(
            [sys.executable, "-c", code.format(enabled=enabled)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == expected


async def test_recorded_strings_pass_the_configured_detectors(tmp_path: Path) -> None:
    """The recorder scrubs with the gateway's masker: a user-defined detector hides its matches in what is
    recorded outside bodies (command lines, targets), not only the built-in ones."""
    config = Config.model_validate(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'kubegate.db'}"},
            "masking": {"detectors": [{"name": "acme-key", "pattern": "acme_[a-z0-9]{12}"}]},
        }
    )
    gateway = Gateway.from_config(config)
    await gateway.start()
    try:
        assert gateway.recorder is not None
        assert gateway.recorder.scrub("kubectl exec app -- use acme_abcdef123456") == (
            f"kubectl exec app -- use {MARKER}"
        )
    finally:
        await gateway.close()
