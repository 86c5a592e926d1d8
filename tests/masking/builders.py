"""Builders for masking tests: Kubernetes objects as the API server sends them, and Flows through the stage."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import orjson
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.kube.requestinfo import parse_request_info
from kubegate.kube.stage import is_stream
from kubegate.masking.config import MaskingConfig
from kubegate.masking.masker import Masker
from kubegate.masking.stage import MaskingStage
from kubegate.policy.decision import Decision

ALL = (
    "secret-values",
    "last-applied",
    "env-credentials",
    "configmap-keys",
    "serviceaccount-tokens",
    "credentials-in-text",
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass
class FakeConnection:
    name: str = "test"


def b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def masker(**config: Any) -> Masker:
    return Masker(MaskingConfig.model_validate(config))


def meta(name: str, namespace: str = "default", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "namespace": namespace, "uid": "7d3c9e0a-uid", "resourceVersion": "417"}
    if annotations:
        out["annotations"] = annotations
    return out


def secret(
    name: str,
    data: dict[str, str] | None = None,
    string_data: dict[str, str] | None = None,
    type_: str = "Opaque",
    last_applied: bool = False,
    kind: bool = True,
) -> dict[str, Any]:
    obj: dict[str, Any] = {"kind": "Secret", "apiVersion": "v1"} if kind else {}
    obj["metadata"] = meta(name)
    obj["type"] = type_
    if data is not None:
        obj["data"] = {k: b64(v) for k, v in data.items()}
    if string_data is not None:
        obj["stringData"] = dict(string_data)
    if last_applied:
        applied = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"},
            "type": type_,
            **({"data": obj["data"]} if "data" in obj else {}),
        }
        obj["metadata"]["annotations"] = {LAST_APPLIED: orjson.dumps(applied).decode() + "\n"}
    return obj


def secret_list(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {
        "kind": "SecretList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "900"},
        "items": [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items],
    }


def container(name: str, env: dict[str, str], args: Sequence[str] = ()) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name,
        "image": "registry.example/app:1.2",
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }
    c["env"].append({"name": "FROM_REF", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}})
    if args:
        c["args"] = list(args)
    return c


def pod_spec(env: dict[str, str], args: Sequence[str] = ()) -> dict[str, Any]:
    return {"containers": [container("app", env, args)], "initContainers": [container("init", env)]}


def workload(kind: str, env: dict[str, str], args: Sequence[str] = ()) -> dict[str, Any]:
    """A Pod, a pod template holder, or a CronJob, with the same env in every container."""
    spec = pod_spec(env, args)
    api = {
        "Pod": "v1",
        "ReplicationController": "v1",
        "PodTemplate": "v1",
        "Job": "batch/v1",
        "CronJob": "batch/v1",
    }.get(kind, "apps/v1")
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api, "metadata": meta(kind.lower())}
    if kind == "Pod":
        obj["spec"] = spec
    elif kind == "PodTemplate":
        obj["template"] = {"spec": spec}
    elif kind == "CronJob":
        obj["spec"] = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": spec}}}}
    else:
        obj["spec"] = {"replicas": 2, "template": {"metadata": {"labels": {"app": "x"}}, "spec": spec}}
    return obj


def configmap(name: str, data: dict[str, str], binary: dict[str, bytes] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta(name), "data": dict(data)}
    if binary:
        obj["binaryData"] = {k: b64(v) for k, v in binary.items()}
    return obj


def table(rows: list[tuple[list[Any], dict[str, Any] | None]]) -> dict[str, Any]:
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "900"},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name"},
            {"name": "Value", "type": "string", "format": ""},
        ],
        "rows": [{"cells": cells, **({"object": obj} if obj is not None else {})} for cells, obj in rows],
    }


def partial(obj: dict[str, Any]) -> dict[str, Any]:
    """The PartialObjectMetadata the API server sends for obj (as=PartialObjectMetadata / Table rows)."""
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def event(type_: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": type_, "object": obj}) + b"\n"


def flow(
    method: str,
    path: str,
    query: str = "",
    masks: Sequence[str] = ALL,
    accept: str | None = None,
    accept_encoding: str | None = "gzip",
) -> Flow:
    headers: CIMultiDict[str] = CIMultiDict()
    if accept is not None:
        headers["Accept"] = accept
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    target = path + (f"?{query}" if query else "")
    request = make_mocked_request(method, target, headers=headers)
    info = parse_request_info(method, path, query)
    f = Flow(
        request=request,
        connection=FakeConnection(),
        method=method,  # type: ignore[arg-type]
        raw_path=path,
        query_string=query,
        headers=CIMultiDict(headers),
    )
    f.info = info
    f.is_stream = is_stream(method, info.verb, info.subresource, info.query)
    f.decision = Decision(action="allow", matches=(), message="", masks=tuple(masks)) if masks else None
    return f


async def exchange(
    stage: MaskingStage,
    f: Flow,
    chunks: Iterable[bytes],
    status: int = 200,
    content_type: str = "application/json",
    encoding: str | None = None,
) -> list[bytes]:
    """Run a flow through the stage as the pipeline does; returns what each hook let out, on_eof last."""
    await stage.on_request(f)
    f.response_status = status
    f.response_headers = CIMultiDict({"Content-Type": content_type})
    if encoding:
        f.response_headers["Content-Encoding"] = encoding
    await stage.on_response(f)
    out = [await stage.on_chunk(f, chunk) for chunk in chunks]
    out.append(await stage.on_eof(f))
    return out


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """data cut at the given offsets (any order, duplicates and out-of-range ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]
