"""kubegate.yaml as pydantic models. A bad file is reported as FILE: field.path: problem."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kubegate.approvals.config import ApprovalsConfig
from kubegate.durations import parse_duration
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

    @property
    def host(self) -> str:
        return self.address.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


class StoreConfig(Strict):
    url: str = ""
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


class IssuerConfig(Strict):
    url: str
    audience: str | list[str]
    subject_claim: str = "sub"
    groups_claim: str = "groups"
    groups_prefix: str = ""
    username_prefix: str | None = Field(
        default=None, description="prepended to the subject for the Kubernetes user; default '<issuer>#'")
    claims: list[str] = []
    required_claims: dict[str, str] = {}
    ca_file: Path | None = None
    jwks_url: str | None = None
    leeway_seconds: int = Field(default=60, ge=0, le=60)

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("an issuer URL must be https:// (plain http only on loopback)")
        return v.rstrip("/") if v.count("/") > 2 else v

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


class KubeconfigAuth(Strict):
    path: Path
    context: str | None = None


class EKSAuth(Strict):
    cluster: str
    region: str
    role_arn: str | None = None
    external_id: str | None = None


class AuthConfig(Strict):
    kubeconfig: KubeconfigAuth | None = None
    token_file: Path | None = None
    token: str | None = Field(default=None, repr=False)
    client_certificate: Path | None = None
    client_key: Path | None = None
    eks: EKSAuth | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AuthConfig:
        chosen = [n for n in ("kubeconfig", "token_file", "token", "client_certificate", "eks")
                  if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError("choose exactly one of kubeconfig, token_file, token, client_certificate, eks"
                             + (f" (got {', '.join(chosen)})" if chosen else ""))
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
    binding_ttl: str | float = Field(default="1h", description="lifetime of a temporary RBAC binding, renewed "
                                     "while in use")

    @field_validator("binding_ttl")
    @classmethod
    def _binding_ttl(cls, v: str | float) -> str | float:
        if parse_duration(v) <= 0:
            raise ValueError("must be longer than zero")
        return v

    @model_validator(mode="after")
    def _server(self) -> ConnectionConfig:
        if self.server is None and self.auth.kubeconfig is None:
            raise ValueError("server is required unless auth.kubeconfig supplies it")
        if self.server is not None and not self.server.startswith(("https://", "http://")):
            raise ValueError("server must be an https:// URL")
        return self

    @model_validator(mode="after")
    def _session_name_needs_eks_role(self) -> ConnectionConfig:
        """Without impersonation the caller must travel as an assumed-role session; any other auth would
        send every caller's request as kubegate itself."""
        if self.identity_mode == "eks-session-name" and (self.auth.eks is None or not self.auth.eks.role_arn):
            raise ValueError("identity_mode eks-session-name needs auth.eks with a role_arn: the caller travels "
                             "as the RoleSessionName of that role")
        return self

    @property
    def binding_ttl_seconds(self) -> float:
        return parse_duration(self.binding_ttl)


class StreamsConfig(Strict):
    """Long-lived streams: watches, followed logs, exec, attach and port-forward."""

    close_on_token_expiry: bool = Field(default=True, description="end a stream when the caller's token expires")
    retry_window_seconds: float = Field(default=15, gt=0, le=300, description="how long a refused WebSocket "
                                        "upgrade is remembered, so kubectl's SPDY retry is the same attempt")


class UIConfig(Strict):
    """The web UI's OpenID Connect client: sign-in by authorization code with PKCE at one of the
    identity issuers, whose `audience` must include `client_id` (an ID token's aud is the client id)."""

    enabled: bool = True
    issuer: str | None = Field(default=None, description="URL of the identity issuer to sign in with; "
                               "default: the first of identity.issuers")
    client_id: str = "kubegate"
    client_secret: str | None = Field(default=None, repr=False, description="for a confidential client; "
                                      "PKCE alone for a public one")
    scopes: list[str] = ["openid", "profile", "email"]
    base_url: str | None = Field(default=None, description="URL browsers reach kubegate at, for the redirect "
                                 "URI BASE/ui/auth/callback; default: listen.external_url, else the request's")
    session_secret: str | None = Field(default=None, repr=False, min_length=32, description="encrypts session "
                                       "cookies; replicas must share it; default: a key kept in state_dir")
    session_lifetime: str = "8h"
    vendor_dir: Path | None = Field(default=None, description="node_modules holding htmx.org and "
                                    "asciinema-player; default: the one beside the kubegate source")

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

    @property
    def session_lifetime_seconds(self) -> float:
        return parse_duration(self.session_lifetime)


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
    return _resolve_paths(config, path.parent.resolve())


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
