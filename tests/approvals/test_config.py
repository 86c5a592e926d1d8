"""The approvals section of kubegate.yaml."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kubegate.approvals.config import ApprovalsConfig
from kubegate.config import Config


def test_defaults() -> None:
    config = Config().approvals
    assert (config.default_timeout, config.grant_lifetime) == (600, 900)
    assert config.notifications == []


def test_webhooks_are_validated_and_named_uniquely() -> None:
    ok = ApprovalsConfig.model_validate(
        {"notifications": [{"name": "oncall", "url": "https://hooks.example/x", "format": "slack"}]}
    )
    assert ok.webhook("oncall") is not None and ok.webhook("other") is None
    assert "hooks.example" not in repr(ok)  # a Slack URL is a secret
    for bad in (
        {"name": "a", "url": "ftp://x"},
        {"name": "A B", "url": "https://x"},
        {"name": "a", "url": "https://x", "format": "teams"},
    ):
        with pytest.raises(ValidationError):
            ApprovalsConfig.model_validate({"notifications": [bad]})
    with pytest.raises(ValidationError, match="unique"):
        ApprovalsConfig.model_validate({"notifications": [{"name": "a", "url": "https://x"}] * 2})


@pytest.mark.parametrize("field", ["default_timeout", "grant_lifetime", "max_scope_duration"])
def test_durations_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError):
        ApprovalsConfig.model_validate({field: "0s"})
    with pytest.raises(ValidationError):
        ApprovalsConfig.model_validate({field: "soon"})
