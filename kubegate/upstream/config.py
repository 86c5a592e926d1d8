"""A connection in kubegate.yaml: a cluster, how kubegate authenticates to it, and how callers travel there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from kubegate.configbase import PositiveDuration, Strict


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
    binding_ttl: PositiveDuration = Field(
        default="1h", validate_default=True, description="lifetime of a temporary RBAC binding, renewed while in use"
    )

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
