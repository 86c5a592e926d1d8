"""An in-memory kube-apiserver for the demo and the end-to-end tests (see cluster.SandboxCluster)."""

from .cluster import SandboxCluster
from .server import SeenRequest

__all__ = ["SandboxCluster", "SeenRequest"]
