"""What loading the gateway costs: heavy libraries only some deployments need are imported on first use."""

from __future__ import annotations

import subprocess
import sys

OPTIONAL = ("alembic", "asyncpg", "cel", "botocore", "boto3", "opentelemetry")


def test_the_gateway_loads_without_the_optional_libraries() -> None:
    """alembic (schema behind), asyncpg (PostgreSQL), cel (CEL conditions), botocore (EKS): ~20 MB a
    SQLite gateway without CEL rules or EKS connections never pays."""
    code = ("import sys, kubegate.app, kubegate.cli.serve, kubegate.policy.engine, kubegate.approvals.signals; "
            f"print([m for m in {OPTIONAL!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
