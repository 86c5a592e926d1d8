"""Read one context of a kubeconfig file into a server URL, TLS trust and Credentials."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubegate.upstream.credentials import (
    ClientCertificate,
    Credentials,
    ExecPlugin,
    StaticToken,
    TokenFile,
)


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message names the file, context and field."""


@dataclass(frozen=True)
class KubeconfigTarget:
    server: str
    ca_file: Path | None
    ca_data: bytes | None
    insecure: bool
    credentials: Credentials


def _named(items: Any, kind: str, name: str, path: Path) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(kind) or {}
    raise KubeconfigError(f"{path}: no {kind} named {name!r}")


def _file(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def load_kubeconfig(path: Path, context: str | None = None) -> KubeconfigTarget:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"{path}: cannot read kubeconfig: {exc}") from exc
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise KubeconfigError(f"{path}: no context given and no current-context set")
    ctx = _named(doc.get("contexts"), "context", ctx_name, path)
    cluster = _named(doc.get("clusters"), "cluster", ctx.get("cluster", ""), path)
    user = _named(doc.get("users"), "user", ctx.get("user", ""), path)
    base = path.parent
    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"{path}: cluster of context {ctx_name!r} has no server")
    ca_file = _file(base, cluster["certificate-authority"]) if cluster.get("certificate-authority") else None
    ca_data = None
    if cluster.get("certificate-authority-data"):
        ca_data = base64.b64decode(cluster["certificate-authority-data"])
    return KubeconfigTarget(
        server=server.rstrip("/"),
        ca_file=ca_file,
        ca_data=ca_data,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        credentials=_credentials(user, base, path, ctx_name),
    )


def _credentials(user: dict[str, Any], base: Path, path: Path, ctx_name: str) -> Credentials:
    if user.get("token"):
        return StaticToken(str(user["token"]))
    if user.get("tokenFile"):
        return TokenFile(_file(base, user["tokenFile"]))
    cert = user.get("client-certificate") or user.get("client-certificate-data")
    key = user.get("client-key") or user.get("client-key-data")
    if cert and key:
        return ClientCertificate(
            _file(base, user["client-certificate"])
            if user.get("client-certificate")
            else base64.b64decode(user["client-certificate-data"]),
            _file(base, user["client-key"]) if user.get("client-key") else base64.b64decode(user["client-key-data"]),
        )
    exec_cfg = user.get("exec")
    if isinstance(exec_cfg, dict) and exec_cfg.get("command"):
        env = {e["name"]: e["value"] for e in exec_cfg.get("env") or [] if "name" in e}
        return ExecPlugin(
            exec_cfg["command"],
            [str(a) for a in exec_cfg.get("args") or []],
            env,
            exec_cfg.get("apiVersion", "client.authentication.k8s.io/v1"),
        )
    raise KubeconfigError(
        f"{path}: user of context {ctx_name!r} has no token, tokenFile, client "
        "certificate or exec plugin kubegate can use"
    )
