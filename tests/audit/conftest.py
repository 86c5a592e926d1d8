"""An S3 anchor on an object-locked bucket of the moto server (tests/conftest.py)."""

from __future__ import annotations

import pytest

from kubegate.audit.config import S3AnchorConfig


@pytest.fixture
def s3_anchor_config(locked_bucket: str, s3_endpoint: str) -> S3AnchorConfig:
    return S3AnchorConfig(bucket=locked_bucket, region="us-east-1", endpoint_url=s3_endpoint, retention="1d")
