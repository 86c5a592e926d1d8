"""kubegate.yaml as pydantic models. A bad file is reported as FILE: field.path: problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kubegate.approvals.config import ApprovalsConfig
from kubegate.audit.config import AuditConfig
from kubegate.durations import parse_duration
from kubegate.identity.model import RESERVED
from kubegate.identity.urls import key_url_problem
from kubegate.masking.config import MaskingConfig
from kubegate.policy.model import PolicyRule

DEFAULT_STATE_DIR = Path(os.environ.get("KUBEGATE_STATE_DIR", "~/.local/state/kubegate")).expanduser()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def read_secret_file(path: Path, field: str) -> str:
    """A value kept in a file (a mounted Kubernetes Secret), so it stays out of kubegate.yaml and the pod spec."""
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{field}: {path} is empty")
    return value


class StoreConfig(Strict):
    url: str = ""
    url_file: Path | None = Field(default=None, description="file holding the url (a mounted Secret), instead of url")
    retention: str = "90d"
    max_body_bytes: int = 65536

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v and not v.startswith(("sqlite:", "postgresql:", "postgresql+asyncpg:", "postgres:")):
            raise ValueError("must be sqlite:///PATH or postgresql://...")
        return v

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: str) -> str:
        parse_duration(v)
        return v

    @model_validator(mode="after")
    def _one_url(self) -> StoreConfig:
        if self.url and self.url_file is not None:
            raise ValueError("url and url_file are alternatives: choose one")
        return self


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
        urls = [i.url for i in self.issuers]
        dupes = sorted({u for u in urls if urls.count(u) > 1})
        if dupes:
            raise ValueError(f"each issuer url may appear once: {', '.join(dupes)}")
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


class KubeconfigAuth(Strict):
    path: Path
    context: str | None = None


class EKSAuth(Strict):
    cluster: str
    region: str
    role_arn: str | None = None
    external_id: str | None = None


SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class InClusterAuth(Strict):
    """kubegate's pod's own service account, as client-go's in-cluster config reads it: the projected token
    (re-read when the kubelet rotates it) and CA in `directory`, the address in KUBERNETES_SERVICE_HOST/PORT."""

    directory: Path = SERVICE_ACCOUNT_DIR


class AuthConfig(Strict):
    kubeconfig: KubeconfigAuth | None = None
    in_cluster: InClusterAuth | None = Field(
        default=None,
        description="true, or {directory: PATH} where the service-account volume is not at the usual place",
    )
    token_file: Path | None = None
    token: str | None = Field(default=None, repr=False)
    client_certificate: Path | None = None
    client_key: Path | None = None
    eks: EKSAuth | None = None

    @field_validator("in_cluster", mode="before")
    @classmethod
    def _in_cluster_flag(cls, v: object) -> object:
        return {} if v is True else None if v is False else v

    @model_validator(mode="after")
    def _exactly_one(self) -> AuthConfig:
        chosen = [
            n
            for n in ("kubeconfig", "in_cluster", "token_file", "token", "client_certificate", "eks")
            if getattr(self, n) is not None
        ]
        if len(chosen) != 1:
            raise ValueError(
                "choose exactly one of kubeconfig, in_cluster, token_file, token, client_certificate, "
                "eks" + (f" (got {', '.join(chosen)})" if chosen else "")
            )
        if (self.client_certificate is None) != (self.client_key is None):
            raise ValueError("client_certificate and client_key go together")
        return self


class ConnectionConfig(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    server: str | None = Field(default=None, description="API server URL; default: the kubeconfig's")
    certificate_authority: Path | None = None
    insecure_skip_tls_verify: bool = False
    auth: AuthConfig
    identity_mode: Literal["impersonation", "eks-session-name"] = "impersonation"
    pass_groups: bool = True
    request_timeout_seconds: float = Field(default=60, gt=0)
    binding_ttl: str | float = Field(
        default="1h", description="lifetime of a temporary RBAC binding, renewed while in use"
    )

    @field_validator("binding_ttl")
    @classmethod
    def _binding_ttl(cls, v: str | float) -> str | float:
        if parse_duration(v) <= 0:
            raise ValueError("must be longer than zero")
        return v

    @model_validator(mode="after")
    def _server(self) -> ConnectionConfig:
        if self.server is None and self.auth.kubeconfig is None and self.auth.in_cluster is None:
            raise ValueError("server is required unless auth.kubeconfig or auth.in_cluster supplies it")
        if self.server is not None and not self.server.startswith(("https://", "http://")):
            raise ValueError("server must be an https:// URL")
        return self

    @model_validator(mode="after")
    def _session_name_needs_eks_role(self) -> ConnectionConfig:
        """Without impersonation the caller must travel as an assumed-role session; any other auth would
        send every caller's request as kubegate itself."""
        if self.identity_mode == "eks-session-name" and (self.auth.eks is None or not self.auth.eks.role_arn):
            raise ValueError(
                "identity_mode eks-session-name needs auth.eks with a role_arn: the caller travels "
                "as the RoleSessionName of that role"
            )
        return self

    @property
    def binding_ttl_seconds(self) -> float:
        return parse_duration(self.binding_ttl)


class StreamsConfig(Strict):
    """Long-lived streams: watches, followed logs, exec, attach and port-forward."""

    close_on_token_expiry: bool = Field(default=True, description="end a stream when the caller's token expires")
    retry_window_seconds: float = Field(
        default=15,
        gt=0,
        le=300,
        description="how long a refused WebSocket upgrade is remembered, so kubectl's SPDY retry is the same attempt",
    )


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
    session_lifetime: str = "8h"
    vendor_dir: Path | None = Field(
        default=None,
        description="node_modules holding htmx.org and "
        "asciinema-player; default: the copy in the installed package, else "
        "node_modules beside the kubegate source",
    )

    @field_validator("session_lifetime")
    @classmethod
    def _lifetime(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError("must be longer than zero")
        return v

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
    def session_lifetime_seconds(self) -> float:
        return parse_duration(self.session_lifetime)

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
        names = [c.name for c in self.connections]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"connection names must be unique: {', '.join(dupes)}")
        return self

    @property
    def store_url(self) -> str:
        if self.store.url_file is not None:
            return read_secret_file(self.store.url_file, "store.url_file")
        return self.store.url or f"sqlite:///{self.state_dir / 'kubegate.db'}"


class ConfigError(Exception):
    """A config file kubegate cannot use; str() names the file, field and problem on each line."""


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {_field_path(loc)}: {msg}")
    return "\n".join(lines)


def load_yaml(path: Path) -> object:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from exc


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
