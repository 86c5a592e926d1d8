"""kubegate.yaml as pydantic models. A bad file is reported as FILE: field.path: problem."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from kubegate.approvals.config import ApprovalsConfig
from kubegate.audit.config import AuditConfig
from kubegate.configbase import (
    ConfigError,
    PositiveDuration,
    Strict,
    format_validation_error,
    load_yaml,
    once_each,
    read_secret_file,
)
from kubegate.identity.config import IdentityConfig
from kubegate.masking.config import MaskingConfig
from kubegate.policy.engine import PolicyEngine, PolicySources
from kubegate.policy.model import PolicyRule
from kubegate.proxy.config import StreamsConfig
from kubegate.recording.config import StoreConfig
from kubegate.upstream.config import ConnectionConfig

DEFAULT_STATE_DIR = Path(os.environ.get("KUBEGATE_STATE_DIR", "~/.local/state/kubegate")).expanduser()


class TLSConfig(Strict):
    cert: Path
    key: Path


class ListenConfig(Strict):
    address: str = "127.0.0.1:8443"
    tls: TLSConfig | None = None
    external_url: str | None = Field(default=None, description="URL clients use, for kubeconfigs and messages")

    @field_validator("address")
    @classmethod
    def _host_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"{v!r} is not HOST:PORT")
        return v

    @field_validator("external_url")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{v!r} is not the https:// URL clients reach kubegate at (no query or fragment)")
        return v.rstrip("/")

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def base_url(self, port: int | None = None) -> str:
        """The URL kubegate hands out (approve commands, sign-in redirects): external_url, else the listen
        address (bound `port` for port 0). Never a request's Host header, which the client writes."""
        if self.external_url:
            return self.external_url
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"https://{f'[{host}]' if ':' in host else host}:{self.port if port is None else port}"


class MCPConfig(Strict):
    """The MCP endpoint for AI agents (`/mcp`): its tools are Kubernetes requests through the usual pipeline."""

    enabled: bool = True
    read_only: bool = Field(default=False, description="offer only the tools that read (no apply, delete, scale, exec)")
    max_result_chars: int = Field(default=40_000, gt=1000, description="largest tool result handed to a model")
    approval_poll_seconds: float = Field(
        default=0.2,
        gt=0,
        description="how often a held call looks for its access request, to answer at once with a pending result",
    )


class UIConfig(Strict):
    """The web UI's OpenID Connect client: sign-in by authorization code with PKCE at one of the
    identity issuers, whose `audience` must include `client_id` (an ID token's aud is the client id)."""

    enabled: bool = True
    issuer: str | None = Field(
        default=None, description="URL of the identity issuer to sign in with; default: the first of identity.issuers"
    )
    client_id: str = "kubegate"
    client_secret: str | None = Field(
        default=None, repr=False, description="for a confidential client; PKCE alone for a public one"
    )
    scopes: list[str] = ["openid", "profile", "email"]
    base_url: str | None = Field(
        default=None,
        description="URL browsers reach kubegate at, for the redirect "
        "URI BASE/ui/auth/callback; default: listen.external_url, else the listen address",
    )
    session_secret: str | None = Field(
        default=None,
        repr=False,
        min_length=32,
        description="encrypts session cookies; replicas must share it; default: a key kept in state_dir",
    )
    session_secret_file: Path | None = Field(
        default=None, description="file holding session_secret (a mounted Secret), instead of session_secret"
    )
    session_lifetime: PositiveDuration = Field(default="8h", validate_default=True)
    vendor_dir: Path | None = Field(
        default=None,
        description="node_modules holding htmx.org and "
        "asciinema-player; default: the copy in the installed package, else "
        "node_modules beside the kubegate source",
    )

    @field_validator("scopes")
    @classmethod
    def _openid(cls, v: list[str]) -> list[str]:
        if "openid" not in v:
            raise ValueError("must include openid")
        return v

    @model_validator(mode="after")
    def _one_secret(self) -> UIConfig:
        if self.session_secret is not None and self.session_secret_file is not None:
            raise ValueError("session_secret and session_secret_file are alternatives: choose one")
        return self

    @property
    def secret(self) -> str | None:
        """session_secret, from the file when one is named."""
        if self.session_secret_file is None:
            return self.session_secret
        value = read_secret_file(self.session_secret_file, "ui.session_secret_file")
        if len(value) < 32:
            raise ConfigError(f"ui.session_secret_file: {self.session_secret_file} holds fewer than 32 characters")
        return value


class TracingConfig(Strict):
    """OTLP/HTTP traces (the `tracing` extra); off unless otlp_endpoint is set."""

    otlp_endpoint: str | None = Field(default=None, description="e.g. http://otel-collector:4318/v1/traces")
    headers: dict[str, str] = Field(default={}, repr=False)
    service_name: str = "kubegate"

    @field_validator("otlp_endpoint")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL of an OTLP/HTTP traces endpoint")
        return value


class Config(Strict):
    listen: ListenConfig = ListenConfig()
    state_dir: Path = DEFAULT_STATE_DIR
    store: StoreConfig = StoreConfig()
    identity: IdentityConfig = IdentityConfig()
    connections: list[ConnectionConfig] = []
    policies: list[PolicyRule] = []
    policy_dirs: list[Path] = []
    max_request_body_bytes: int = Field(default=3 * 1024 * 1024, gt=0)
    masking: MaskingConfig = MaskingConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    streams: StreamsConfig = StreamsConfig()
    ui: UIConfig = UIConfig()
    mcp: MCPConfig = MCPConfig()
    audit: AuditConfig = AuditConfig()
    tracing: TracingConfig = TracingConfig()

    @model_validator(mode="after")
    def _ui_issuer(self) -> Config:
        urls = [i.url for i in self.identity.issuers]
        if self.ui.issuer is not None and self.ui.issuer.rstrip("/") not in urls:
            raise ValueError(f"ui.issuer {self.ui.issuer} is not one of identity.issuers ({', '.join(urls) or 'none'})")
        return self

    @model_validator(mode="after")
    def _unique_connections(self) -> Config:
        once_each([c.name for c in self.connections], "connection names")
        return self

    @property
    def store_url(self) -> str:
        if self.store.url_file is not None:
            return read_secret_file(self.store.url_file, "store.url_file")
        return self.store.url or f"sqlite:///{self.state_dir / 'kubegate.db'}"


def load_config(path: Path | str) -> Config:
    """Read and validate kubegate.yaml; relative paths inside it are taken from the file's folder."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: (top level): must be a mapping, got {type(data).__name__}")
    try:
        config = Config.model_validate(data, context={"base": path.parent})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from exc
    config = _resolve_paths(config, path.parent.resolve())
    try:
        _ = config.store_url, config.ui.secret  # secret files are read now, so a bad one stops startup here
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        if config.approvals.slack is not None:
            config.approvals.slack.secret()
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return config


def _resolve_paths(config: Config, base: Path) -> Config:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p.expanduser()).resolve()

    def fix_model(model: BaseModel) -> BaseModel:
        updates: dict[str, object] = {}
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, Path):
                updates[name] = fix(value)
            elif isinstance(value, BaseModel):
                updates[name] = fix_model(value)
            elif isinstance(value, list) and value and isinstance(value[0], Path):
                updates[name] = [fix(v) for v in value]
            elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
                updates[name] = [fix_model(v) for v in value]
        return model.model_copy(update=updates) if updates else model

    fixed = fix_model(config)
    assert isinstance(fixed, Config)
    return fixed


def policy_sources(config: Config) -> PolicySources:
    return PolicySources(
        tuple(config.policies),
        tuple(config.policy_dirs),
        tuple(i.user_prefix for i in config.identity.issuers),
        config.masking.known(),
    )


def policy_engine(config: Config, config_path: Path | None = None) -> PolicyEngine:
    """config.policies plus every policy file in config.policy_dirs. With `config_path`, a change to
    kubegate.yaml itself also reloads its policies and policy_dirs. Raises ConfigError."""
    sources = policy_sources(config)
    return PolicyEngine(
        sources.rules,
        sources.dirs,
        config_path=config_path,
        user_prefixes=sources.user_prefixes,
        known_masks=sources.known_masks,
        read_config=lambda path: policy_sources(load_config(path)),
    )
