"""Recorded Kubernetes JSON the upstream serves, laid out as `<request path>.json` under one root.

One pod, a namespace of 500 pods, 10,000 Secrets (about 20 MB, built by bench.masking.make_secret so
the masking figure and the end-to-end figure measure the same objects), and the pod a watch
event carries. Pods look like real ones: env vars, one of them a credential a mask hides.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import orjson

from bench.masking import make_secret

POD_PATH = "/api/v1/namespaces/default/pods/web-0"
PODS_PATH = "/api/v1/namespaces/bench/pods"
SECRETS_PATH = "/api/v1/namespaces/bench/secrets"
WATCH_PATH = "/api/v1/namespaces/watch/pods"
"""Watches are served by bench.upstream's event server (nginx proxies this namespace to it)."""


def make_pod(name: str, namespace: str) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"8f1c2b9e-0000-4000-8000-{zlib.crc32(name.encode()):012d}",
            "resourceVersion": "123456",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": name.rsplit("-", 1)[0], "pod-template-hash": "7d9f8b6c5"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d9f8b6c5",
                    "uid": "11111111-2222-4333-8444-555555555555",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/web:1.27.3",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "DATABASE_URL", "value": "postgres://app:s3cr3t@db:5432/app"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    ],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io"}],
                }
            ],
            "nodeName": "node-1",
            "serviceAccountName": "default",
            "restartPolicy": "Always",
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.12",
            "hostIP": "192.168.0.3",
            "startTime": "2024-05-01T10:00:01Z",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2024-05-01T10:00:05Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "restartCount": 0,
                    "image": "registry.example/web:1.27.3",
                    "started": True,
                    "state": {"running": {"startedAt": "2024-05-01T10:00:04Z"}},
                }
            ],
        },
    }


def _list(kind: str, items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "123456"}, "items": items})


def write_fixtures(root: Path, *, secrets: int = 10_000, pods: int = 500) -> dict[str, int]:
    """Write every body once (kept between runs of the same size); returns body sizes by path."""
    bodies = {
        POD_PATH: lambda: orjson.dumps(make_pod("web-0", "default")),
        PODS_PATH: lambda: _list("PodList", [make_pod(f"web-{i}", "bench") for i in range(pods)]),
        SECRETS_PATH: lambda: _list("SecretList", [make_secret(i) for i in range(secrets)]),
    }
    stamp = root / f".sizes-{secrets}-{pods}"
    sizes: dict[str, int] = {}
    for path, make in bodies.items():
        file = root / (path.lstrip("/") + ".json")
        if not (stamp.exists() and file.exists()):
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(make())
        sizes[path] = file.stat().st_size
    for old in root.glob(".sizes-*"):
        old.unlink()
    stamp.touch()
    return sizes
