"""The `audit:` section of kubegate.yaml: signing key, anchors, export sinks and the access log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from kubegate.configbase import PositiveDuration, Strict, once_each

Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an https:// URL (http:// only for a receiver you trust on the network)")
    return value


class SigningConfig(Strict):
    """`key_file` signs new checkpoints; `trusted_keys` are the public keys `audit verify` accepts (the
    current key and every retired one whose checkpoints are still kept)."""

    key_file: Path | None = Field(default=None, description="Ed25519 private key (PEM, PKCS#8)")
    trusted_keys: list[Path] = Field(default=[], description="Ed25519 public keys (PEM) that verify checkpoints")


class S3AnchorConfig(Strict):
    bucket: str
    prefix: str = "kubegate/checkpoints/"
    region: str | None = None
    endpoint_url: str | None = None
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "COMPLIANCE"
    retention: PositiveDuration = Field(default="400d", validate_default=True)


class WebhookAnchorConfig(Strict):
    """Each checkpoint is POSTed to `url` (a transparency log, a SIEM, another team's store). With `read_url`,
    `audit verify` reads them back: GET read_url with `{number}` replaced answers 200 with the very bytes
    POSTed for that checkpoint, or 404 when the receiver has none (docs/audit.md, the receiver's contract)."""

    url: str = Field(repr=False)
    headers: dict[str, str] = Field(default={}, repr=False)
    read_url: str | None = Field(default=None, repr=False, description="GET URL of one checkpoint, with {number}")
    read_headers: dict[str, str] | None = Field(default=None, repr=False, description="for reads; default headers")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("read_url")
    @classmethod
    def _read_url(cls, value: str | None) -> str | None:
        if value is not None and "{number}" not in _http_url(value):
            raise ValueError("must name the checkpoint with {number} (https://receiver.example/checkpoints/{number})")
        return value


class AnchorsConfig(Strict):
    s3: S3AnchorConfig | None = None
    webhook: WebhookAnchorConfig | None = None


class SinkConfig(Strict):
    """One export destination; each keeps its own cursor in the store, so a slow one delays nobody else."""

    name: Name
    type: Literal["stdout", "file", "webhook", "s3"]
    path: Path | None = Field(default=None, description="file sink: the JSON-lines file to append to")
    url: str | None = Field(default=None, repr=False, description="webhook sink: where EventLists are POSTed")
    headers: dict[str, str] = Field(default={}, repr=False)
    bucket: str | None = None
    prefix: str = "kubegate/audit/"
    region: str | None = None
    endpoint_url: str | None = None
    batch_max: int = Field(default=500, gt=0, le=10_000)

    @model_validator(mode="after")
    def _needs(self) -> SinkConfig:
        needed = {"file": "path", "webhook": "url", "s3": "bucket"}.get(self.type)
        if needed and getattr(self, needed) is None:
            raise ValueError(f"a {self.type} sink needs {needed}")
        if self.url is not None:
            _http_url(self.url)
        return self


class ExportConfig(Strict):
    sinks: list[SinkConfig] = []
    interval: PositiveDuration = Field(default="1s", validate_default=True)
    retry_max_interval: PositiveDuration = Field(default="1m", validate_default=True)
    lease: PositiveDuration = Field(
        default="30s",
        validate_default=True,
        description="how long a replica holds a sink before another may "
        "take over; renewed every interval, so make it several intervals long",
    )
    lag_alarm: int = Field(default=10_000, gt=0, description="events behind at which /readyz reports the sink lagging")

    @model_validator(mode="after")
    def _unique(self) -> ExportConfig:
        once_each([s.name for s in self.sinks], "sink names")
        return self


class AccessLogConfig(Strict):
    enabled: bool = True
    format: Literal["json", "text"] = "json"


class AuditConfig(Strict):
    signing: SigningConfig = SigningConfig()
    anchors: AnchorsConfig = AnchorsConfig()
    checkpoint_interval: PositiveDuration = Field(default="5m", validate_default=True)
    export: ExportConfig = ExportConfig()
    access_log: AccessLogConfig = AccessLogConfig()

    @model_validator(mode="after")
    def _anchors_need_a_key(self) -> AuditConfig:
        if (self.anchors.s3 or self.anchors.webhook) and self.signing.key_file is None:
            raise ValueError("anchors need signing.key_file: checkpoints are signed before they leave")
        return self
