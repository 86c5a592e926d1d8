"""The store section of kubegate.yaml: where recordings live, for how long, and how much of a body they keep."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from kubegate.configbase import Duration, Strict


class StoreConfig(Strict):
    url: str = ""
    url_file: Path | None = Field(default=None, description="file holding the url (a mounted Secret), instead of url")
    retention: Duration = Field(default="90d", validate_default=True)
    max_body_bytes: int = 65536

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v and not v.startswith(("sqlite:", "postgresql:", "postgresql+asyncpg:", "postgres:")):
            raise ValueError("must be sqlite:///PATH or postgresql://...")
        return v

    @model_validator(mode="after")
    def _one_url(self) -> StoreConfig:
        if self.url and self.url_file is not None:
            raise ValueError("url and url_file are alternatives: choose one")
        return self
