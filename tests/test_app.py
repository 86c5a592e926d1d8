"""What loading the gateway costs: heavy libraries only some deployments need are imported on first use."""

from __future__ import annotations

import subprocess
import sys

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
    """With `mcp.enabled: false` there is no /mcp route, and the MCP SDK is never imported."""
    code = (
        "import sys; from kubegate.app import build_app; from kubegate.config import Config; "
        "enabled = '{enabled}' == 'True'; "
        "app = build_app(Config.model_validate({{'mcp': {{'enabled': enabled}}}})); "
        "print(sorted({{r.canonical for r in app.router.resources()}} & {{'/mcp', "
        "'/.well-known/oauth-protected-resource'}}), 'mcp' in sys.modules)"
    )
    for enabled, expected in ((True, "['/.well-known/oauth-protected-resource', '/mcp'] True"), (False, "[] False")):
        out = subprocess.run(
            [sys.executable, "-c", code.format(enabled=enabled)], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == expected
