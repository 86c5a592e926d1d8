"""A whole kubegate world on loopback: sandbox cluster, development issuer and gateway.

The demo runs it until Ctrl-C; the end-to-end tests start one per test session and drive real
kubectl through it. Both get the same wiring, so what the demo shows is what the tests prove.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from kubegate.cli.invocation import token_plugin
from kubegate.config import Config, load_config
from kubegate.listener import Listening, start_gateway
from kubegate.sandbox.cluster import SandboxCluster
from kubegate.sandbox.issuer import DevIssuer

CONNECTION = "sandbox"


class Cluster(Protocol):
    """What the environment needs of a cluster: the sandbox, or a real one (sandbox/envtest.py)."""

    url: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path: ...


DEMO_GROUPS = ("developers",)
# The cluster holds no permanent grant for the demo identities: developers get cluster-admin from the
# policy, as a temporary ClusterRoleBinding kubegate makes on their first request and reaps when unused.
DEMO_POLICIES: list[dict[str, Any]] = [
    {
        "name": "developers-work-everywhere",
        "subjects": {"groups": ["developers"]},
        "action": "allow",
        "role": "cluster-admin",
        "role_scope": "cluster",
        "mask": ["secret-values", "last-applied", "env-credentials", "serviceaccount-tokens", "credentials-in-text"],
    },
    {
        "name": "kube-system-is-read-only",
        "match": {"namespaces": ["kube-system"], "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        "action": "deny",
        "message": "kube-system is managed by the platform team; change it through GitOps",
    },
    {
        "name": "namespace-deletion-needs-a-human",
        "match": {"verbs": ["delete"], "resources": ["namespaces"]},
        "action": "review",
        "reviewers": {"groups": ["platform-oncall"]},
    },
]


@dataclass
class Environment:
    state_dir: Path
    cluster: Any
    issuer: DevIssuer
    config_file: Path
    connection: str = CONNECTION
    gateway: Listening | None = None
    config: Config | None = None
    policy_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.policy_dir = self.state_dir / "policies"

    @property
    def server(self) -> str:
        assert self.gateway is not None
        return f"{self.gateway.url}/k8s/{self.connection}"

    def write_kubeconfig(
        self,
        path: Path,
        *,
        token: str | None = None,
        sub: str = "demo",
        groups: tuple[str, ...] = DEMO_GROUPS,
        claims: dict[str, str] | None = None,
    ) -> Path:
        """A kubeconfig for the gateway: a fixed token, or `kubegate token` minting at the dev issuer."""
        assert self.gateway is not None and self.gateway.ca_file is not None
        if token is not None:
            user: dict[str, Any] = {"token": token}
        else:
            args = ["--dev-issuer", self.issuer.url, "--ca", str(self.issuer.ca_file), "--sub", sub]
            for g in groups:
                args += ["--group", g]
            for k, v in (claims or {}).items():
                args += ["--claim", f"{k}={v}"]
            user = {"exec": token_plugin(args)}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "kubegate",
            "clusters": [
                {
                    "name": "kubegate",
                    "cluster": {"server": self.server, "certificate-authority": str(self.gateway.ca_file)},
                }
            ],
            "users": [{"name": "kubegate", "user": user}],
            "contexts": [
                {"name": "kubegate", "context": {"cluster": "kubegate", "user": "kubegate", "namespace": "default"}}
            ],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        return path

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        await self.issuer.stop()
        await self.cluster.stop()


def gateway_config(
    state_dir: Path,
    cluster_kubeconfig: Path,
    issuer: DevIssuer,
    policy_dir: Path,
    store_url: str = "",
    listen: str = "127.0.0.1:0",
    connection: str = CONNECTION,
) -> dict[str, Any]:
    return {
        "listen": {"address": listen},
        "state_dir": str(state_dir / "gateway"),
        "store": {"url": store_url},
        "identity": {
            "issuers": [
                {
                    "url": issuer.url,
                    "audience": "kubegate",
                    "ca_file": str(issuer.ca_file),
                    "username_prefix": "sandbox:",
                    "claims": ["repository", "workflow", "run_id", "actor", "ref"],
                }
            ],
            "admin_groups": ["kubegate-admins"],
            "auditor_groups": ["auditors"],
        },
        "connections": [{"name": connection, "auth": {"kubeconfig": {"path": str(cluster_kubeconfig)}}}],
        "policies": DEMO_POLICIES,
        "policy_dirs": [str(policy_dir)],
    }


async def start_environment(
    state_dir: Path,
    *,
    listen: str = "127.0.0.1:0",
    store_url: str = "",
    cluster: Cluster | None = None,
    connection: str = CONNECTION,
    policies: list[dict[str, Any]] | None = None,
) -> Environment:
    """Start the cluster (the sandbox unless given another) and issuer, write kubegate.yaml for them,
    and start the gateway on it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    cluster = cluster or SandboxCluster(state_dir / "cluster")
    await cluster.start()
    issuer = DevIssuer(state_dir / "issuer")
    await issuer.start()
    cluster_kubeconfig = cluster.write_kubeconfig(state_dir / "cluster" / "gateway.kubeconfig")
    env = Environment(
        state_dir=state_dir,
        cluster=cluster,
        issuer=issuer,
        config_file=state_dir / "kubegate.yaml",
        connection=connection,
    )
    env.policy_dir.mkdir(exist_ok=True)
    doc = gateway_config(state_dir, cluster_kubeconfig, issuer, env.policy_dir, store_url, listen, connection)
    if policies is not None:
        doc["policies"] = policies
    env.config_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    env.config = load_config(env.config_file)
    env.gateway = await start_gateway(env.config)
    return env
