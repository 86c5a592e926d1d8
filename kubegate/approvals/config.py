"""The `approvals:` section of kubegate.yaml: how long requests wait, how long grants last, who is told."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator

from kubegate.configbase import PositiveDuration, Strict, once_each

if TYPE_CHECKING:
    from kubegate.policy.model import PolicyRule


class WebhookConfig(Strict):
    """One notification target. `json` posts kubegate's own event document; `slack` posts a Slack
    incoming-webhook message (text plus blocks), which Mattermost and Teams workflows also accept.
    The URL and headers stay in the config: the outbox stores only the webhook's name."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    url: str = Field(repr=False)
    format: Literal["json", "slack"] = "json"
    headers: dict[str, str] = Field(default={}, repr=False)
    events: list[Literal["created", "approved", "denied", "expired", "revoked"]] = ["created", "approved", "denied"]

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL (http:// only for a receiver you trust on the network)")
        return value


class SlackReviewer(Strict):
    """The kubegate reviewer a Slack user acts as: policy's reviewers rules judge this username and groups."""

    username: str = Field(min_length=1)
    groups: list[str] = []


class SlackConfig(Strict):
    """Approve / Deny buttons on Slack messages (webhooks with `format: slack`) and the endpoint,
    `/slack/interactions`, that Slack posts a click to. Only Slack users listed in `users` can decide."""

    signing_secret: str | None = Field(default=None, repr=False, description="the Slack app's signing secret")
    signing_secret_file: Path | None = Field(default=None, description="file holding the signing secret")
    users: dict[str, SlackReviewer] = Field(default={}, description="Slack user id (U0123...) -> reviewer")

    @model_validator(mode="after")
    def _one_secret(self) -> SlackConfig:
        if (self.signing_secret is None) == (self.signing_secret_file is None):
            raise ValueError("set exactly one of signing_secret and signing_secret_file")
        return self

    def secret(self) -> str:
        if self.signing_secret is not None:
            return self.signing_secret
        assert self.signing_secret_file is not None
        try:
            value = self.signing_secret_file.read_text().strip()
        except OSError as exc:
            raise ValueError(
                f"approvals.slack.signing_secret_file: cannot read {self.signing_secret_file}: {exc.strerror}"
            ) from exc
        if not value:
            raise ValueError(f"approvals.slack.signing_secret_file: {self.signing_secret_file} is empty")
        return value


class ApprovalsConfig(Strict):
    """Timeouts are durations (10m, 1h). `default_timeout` applies to review rules that set none."""

    default_timeout: PositiveDuration = Field(default="10m", validate_default=True)
    grant_lifetime: PositiveDuration = Field(default="15m", validate_default=True)
    max_scope_duration: PositiveDuration = Field(default="8h", validate_default=True)
    poll_interval: float = Field(default=0.5, gt=0, le=5)
    notifications: list[WebhookConfig] = []
    retry_max_interval: PositiveDuration = Field(default="5m", validate_default=True)
    retry_give_up_after: PositiveDuration = Field(default="24h", validate_default=True)
    notification_retention: PositiveDuration = Field(default="7d", validate_default=True)
    slack: SlackConfig | None = None
    """How long a delivered (or given-up) notification stays in the outbox, for an operator to look at."""

    @model_validator(mode="after")
    def _unique_names(self) -> ApprovalsConfig:
        once_each([w.name for w in self.notifications], "notification names")
        return self

    def timeout_for(self, rules: Iterable[PolicyRule | None]) -> float:
        """How long a held request waits: the shortest timeout among its review rules, where a rule that
        sets none (or is gone) counts as default_timeout. The gateway and `policy explain` both use this."""
        timeouts = [
            rule.reviewers.timeout
            if rule is not None and rule.reviewers is not None and "timeout" in rule.reviewers.model_fields_set
            else self.default_timeout
            for rule in rules
        ]
        return min(timeouts, default=self.default_timeout)

    def webhook(self, name: str) -> WebhookConfig | None:
        return next((w for w in self.notifications if w.name == name), None)
