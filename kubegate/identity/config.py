"""The identity section of kubegate.yaml: the OIDC issuers kubegate trusts and the groups with admin rights."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from kubegate.configbase import Strict, once_each
from kubegate.identity.model import RESERVED
from kubegate.identity.urls import key_url_problem


class IssuerConfig(Strict):
    url: str
    audience: str | list[str]
    subject_claim: str = "sub"
    groups_claim: str = "groups"
    groups_prefix: str = ""
    username_prefix: str | None = Field(
        default=None, description="prepended to the subject for the Kubernetes user; default '<issuer>#'"
    )
    claims: list[str] = []
    required_claims: dict[str, str] = {}
    ca_file: Path | None = None
    jwks_url: str | None = None
    leeway_seconds: int = Field(default=60, ge=0, le=60)

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        problem = key_url_problem(v)
        if problem:
            raise ValueError(problem)
        return v.rstrip("/") if v.count("/") > 2 else v

    @field_validator("jwks_url")
    @classmethod
    def _https_keys(cls, v: str | None) -> str | None:
        problem = key_url_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("username_prefix", "groups_prefix")
    @classmethod
    def _not_system(cls, v: str | None) -> str | None:
        if v is not None and v.startswith(RESERVED):
            raise ValueError(f"{v!r} starts with {RESERVED}, which Kubernetes reserves for its own users and groups")
        return v

    @property
    def audiences(self) -> list[str]:
        return [self.audience] if isinstance(self.audience, str) else list(self.audience)

    @property
    def user_prefix(self) -> str:
        return self.username_prefix if self.username_prefix is not None else f"{self.url}#"


class IdentityConfig(Strict):
    issuers: list[IssuerConfig] = []
    token_cache_seconds: float = Field(default=300, ge=0)
    admin_groups: list[str] = []
    auditor_groups: list[str] = []

    @model_validator(mode="after")
    def _unique_issuers(self) -> IdentityConfig:
        once_each([i.url for i in self.issuers], "issuer urls")
        return self

    @model_validator(mode="after")
    def _distinct_user_prefixes(self) -> IdentityConfig:
        """A Kubernetes user name must say which issuer vouched for it, or policy `users:` could match a
        subject from another issuer: no issuer's username_prefix may begin another's (nor be empty then)."""
        for i, a in enumerate(self.issuers):
            for j, b in enumerate(self.issuers):
                if i != j and b.user_prefix.startswith(a.user_prefix):
                    raise ValueError(
                        f"issuers[{j}].username_prefix {b.user_prefix!r} begins with issuers[{i}]'s "
                        f"{a.user_prefix!r}, so a user name would not say which issuer it came from; give each "
                        "issuer its own prefix, such as 'github:' and 'okta:'"
                    )
        return self
