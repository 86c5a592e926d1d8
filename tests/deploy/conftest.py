"""A real control plane of its own for the deployment tests, as a fresh cluster is before kubegate is installed
(the shared world's cluster binds kubegate's ClusterRole to its EKS-style user, which these manifests replace)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubegate.sandbox.envtest import ControlPlane
from tests.conftest import KUBECTL, _envtest_or_skip, kubectl_env

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ROOT / "deploy" / "kubernetes" / "overlays"


class Cluster:
    """The control plane and kubectl as its admin."""

    def __init__(self, control: ControlPlane, kubeconfig: Path) -> None:
        self.control = control
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [KUBECTL, f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            env=kubectl_env(),
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _envtest_or_skip()
    root = tmp_path_factory.mktemp("deploy-cluster")
    control = ControlPlane(root / "control-plane").start()
    try:
        # ControlPlane binds deploy/rbac.yaml for its own tests; a fresh cluster has no such binding.
        control.request("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubegate")
        yield Cluster(control, control.admin_kubeconfig(root / "admin.kubeconfig"))
    finally:
        control.stop()
