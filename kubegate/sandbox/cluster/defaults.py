"""What kube-apiserver's defaulting and the controllers would have done to an object by the time a client
looks: pods scheduled and Running, deployments fully rolled out, services with a cluster IP."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import uuid
from typing import Any

from .kinds import Kind

NODE = "sandbox-node"
NODE_IP = "10.0.0.10"
_pod_ips = itertools.count(2)
_service_ips = itertools.count(2)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pull_policy(image: str) -> str:
    tag = image.rsplit("/", 1)[-1]
    return "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"


def _default_container(c: dict[str, Any]) -> None:
    c.setdefault("imagePullPolicy", _pull_policy(c.get("image", "")))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")


def _default_pod_spec(spec: dict[str, Any]) -> None:
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        _default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)


def _pod_status(pod: dict[str, Any], started: str) -> dict[str, Any]:
    ip = f"10.244.0.{next(_pod_ips) % 250 + 2}"
    statuses = [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"docker.io/{c.get('image', '')}",
            "containerID": f"containerd://{uuid.uuid4().hex}",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
        }
        for c in pod["spec"].get("containers") or []
    ]
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": started}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    }


def _deployment_status(d: dict[str, Any]) -> dict[str, Any]:
    replicas = d["spec"].get("replicas", 1)
    stamp = now()
    return {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "{d["metadata"]["name"]}-sandbox" has successfully progressed.',
            },
        ],
    }


def _default_deployment(d: dict[str, Any]) -> None:
    spec = d.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    )
    template = spec.setdefault("template", {})
    _default_pod_spec(template.setdefault("spec", {}))


def _default_service(s: dict[str, Any]) -> None:
    spec = s.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
        n = next(_service_ips)
        spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 2}"
    if spec.get("clusterIP"):
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    s.setdefault("status", {"loadBalancer": {}})


def _fold_string_data(secret: dict[str, Any]) -> None:
    """stringData is write-only: kube-apiserver merges it into data (base64) and never stores it."""
    string_data = secret.pop("stringData", None) or {}
    if string_data:
        data = secret.get("data") or {}
        data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()})
        secret["data"] = data


def apply_defaults(kind: Kind, obj: dict[str, Any]) -> None:
    """Defaulting that kube-apiserver applies on every write."""
    if kind.resource == "pods":
        _default_pod_spec(obj.setdefault("spec", {}))
    elif kind.resource == "deployments":
        _default_deployment(obj)
    elif kind.resource == "services":
        _default_service(obj)
    elif kind.resource == "secrets":
        obj.setdefault("type", "Opaque")
        _fold_string_data(obj)
    elif kind.resource == "namespaces":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = obj.get("status") or {"phase": "Active"}
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def on_create(kind: Kind, obj: dict[str, Any]) -> None:
    """Server-set metadata and the status a controller would have reported right away."""
    meta = obj["metadata"]
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = now()
    for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(field, None)
    if "spec" in obj or kind.resource in ("pods", "deployments"):
        meta["generation"] = 1
    apply_defaults(kind, obj)
    if kind.resource == "pods":
        obj["spec"].setdefault("nodeName", NODE)
        obj["status"] = _pod_status(obj, meta["creationTimestamp"])
    elif kind.resource == "deployments":
        obj["status"] = _deployment_status(obj)


def on_update(kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Keep what an update may not change, bump generation on spec changes, let controllers react."""
    meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
    for field in ("uid", "creationTimestamp", "generation", "deletionTimestamp"):
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    apply_defaults(kind, new)
    if kind.resource == "namespaces":
        new["status"] = old.get("status")
    if "generation" in meta and new.get("spec") != old.get("spec"):
        meta["generation"] = int(meta["generation"]) + 1
        if kind.resource == "deployments":
            new["status"] = _deployment_status(new)
