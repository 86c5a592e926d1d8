"""Masking cost: a LIST of 10,000 Secrets (about 20 MB of JSON), watch events, and log text.

Compares the SecretList fast path (typed decoding, kubegate/masking/secretlist.py) with the general
path (the same Secrets as a `List`) and with the floor any decode-and-encode pays (orjson.loads +
dumps of the same body); and, for a LIST of Services that no mask touches, the stage (byte-level
pre-check, kubegate/masking/untouched.py, then only a JSON validity check) with the full walk it skips.
Run: .venv/bin/python bench/masking.py [--secrets N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.kube.requestinfo import parse_request_info
from kubegate.kube.stage import is_stream
from kubegate.masking.config import BUILTIN_PROFILES, MaskingConfig
from kubegate.masking.masker import Masker, mask_document
from kubegate.masking.stage import MaskingStage
from kubegate.policy.decision import Decision

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CHUNK = 64 * 1024


class _Connection:
    name = "bench"


def make_secret(i: int) -> dict[str, Any]:
    data = {f"key-{k}": base64.b64encode(os.urandom(180)).decode() for k in range(4)}
    applied = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "data": data,
        "metadata": {"name": f"app-{i}", "namespace": f"team-{i % 40}"},
    }
    return {
        "metadata": {
            "name": f"app-{i}",
            "namespace": f"team-{i % 40}",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(100000 + i),
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": f"app-{i}", "team": f"team-{i % 40}"},
            "annotations": {LAST_APPLIED: orjson.dumps(applied).decode() + "\n"},
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2024-05-01T10:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {f"f:key-{k}": {} for k in range(4)}},
                }
            ],
        },
        "type": "Opaque",
        "data": data,
    }


def flow(path: str, query: str = "") -> Flow:
    request = make_mocked_request("GET", path + (f"?{query}" if query else ""))
    info = parse_request_info("GET", path, query)
    f = Flow(
        request=request,
        connection=_Connection(),
        method="GET",
        raw_path=path,  # type: ignore[arg-type]
        query_string=query,
        headers=CIMultiDict(),
    )
    f.info, f.is_stream = info, is_stream("GET", info.verb, info.subresource, info.query)
    f.decision = Decision(action="allow", matches=(), message="", masks=BUILTIN_PROFILES)
    return f


async def through_stage(stage: MaskingStage, f: Flow, chunks: list[bytes], content_type: str) -> int:
    await stage.on_request(f)
    f.response_status = 200
    f.response_headers = CIMultiDict({"Content-Type": content_type})
    await stage.on_response(f)
    size = 0
    for chunk in chunks:
        size += len(await stage.on_chunk(f, chunk))
    return size + len(await stage.on_eof(f))


async def fan_out(line: bytes, watchers: int) -> tuple[float, float]:
    """The same event through `watchers` watch flows of one stage, as kube-apiserver fans it out:
    seconds for the first watcher and per watcher after it (flows are made before the clock starts)."""
    stage = MaskingStage(Masker(MaskingConfig()))
    flows = [flow("/api/v1/secrets", "watch=true") for _ in range(watchers)]
    for f in flows:
        await stage.on_request(f)
        f.response_status = 200
        f.response_headers = CIMultiDict({"Content-Type": "application/json"})
        await stage.on_response(f)
    start = time.perf_counter()
    await stage.on_chunk(flows[0], line)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for f in flows[1:]:
        await stage.on_chunk(f, line)
    return first, (time.perf_counter() - start) / max(1, watchers - 1)


def make_service(i: int) -> dict[str, Any]:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": f"web-{i}",
            "namespace": "bench",
            "uid": f"8f1c2b9e-0000-4000-8000-{i:012d}",
            "resourceVersion": str(1000 + i),
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": "web", "tier": "frontend"},
        },
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            "clusterIP": f"10.0.{i // 250}.{i % 250}",
            "type": "ClusterIP",
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {}},
    }


def split(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


def best(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    stage = MaskingStage(Masker(MaskingConfig()))
    body = (
        orjson.dumps(
            {
                "kind": "SecretList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"},
                "items": [make_secret(i) for i in range(args.secrets)],
            }
        )
        + b"\n"
    )
    loop = asyncio.new_event_loop()

    items = [make_secret(i) for i in range(args.secrets)]
    mixed = (
        orjson.dumps(
            {
                "kind": "List",
                "apiVersion": "v1",
                "metadata": {},
                "items": [{"kind": "Secret", "apiVersion": "v1", **item} for item in items],
            }
        )
        + b"\n"
    )
    floor = best(args.repeat, lambda: orjson.dumps(orjson.loads(body)))
    general = best(
        args.repeat,
        lambda: loop.run_until_complete(
            through_stage(stage, flow("/api/v1/secrets"), split(mixed), "application/json")
        ),
    )
    fast = best(
        args.repeat,
        lambda: loop.run_until_complete(through_stage(stage, flow("/api/v1/secrets"), split(body), "application/json")),
    )
    print(f"LIST of {args.secrets} Secrets, {len(body) / 1e6:.1f} MB, all built-in profiles:")
    print(f"  orjson loads+dumps alone      {floor * 1000:8.1f} ms  (the floor of any decode-and-encode)")
    print(f"  general path (as a List)      {general * 1000:8.1f} ms")
    print(f"  SecretList fast path          {fast * 1000:8.1f} ms  ({fast / floor:.2f}x the floor)")

    services = orjson.dumps(
        {"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": [make_service(i) for i in range(2000)]}
    )
    plan = stage.masker.plan(BUILTIN_PROFILES)
    walk = best(args.repeat, lambda: mask_document(plan, orjson.loads(services), None) and orjson.dumps(None))
    untouched = best(
        args.repeat,
        lambda: loop.run_until_complete(
            through_stage(stage, flow("/api/v1/services"), split(services), "application/json")
        ),
    )
    print(f"LIST of 2000 Services, {len(services) / 1e6:.1f} MB, all built-in profiles (no mask touches them):")
    print(f"  full walk (loads, mask, no change) {walk * 1000:6.1f} ms")
    print(f"  through the stage (pre-check)      {untouched * 1000:6.1f} ms")

    events = [
        orjson.dumps({"type": "MODIFIED", "object": {"kind": "Secret", "apiVersion": "v1", **make_secret(i)}}) + b"\n"
        for i in range(args.events)
    ]
    per_event = best(
        args.repeat,
        lambda: loop.run_until_complete(
            through_stage(stage, flow("/api/v1/secrets", "watch=true"), events, "application/json")
        ),
    )
    print(f"watch: {args.events} Secret events of {len(events[0])} bytes, one chunk each:")
    print(f"  per event                     {per_event / args.events * 1e6:8.1f} us")
    first, each = loop.run_until_complete(fan_out(events[0], args.events))
    print(
        f"  one event fanned out to {args.events} watchers: first {first * 1e6:.1f} us, "
        f"each other {each * 1e6:.1f} us (masked once, kubegate/masking/cache.py)"
    )

    clean = (
        b"2024-05-01T10:00:00.123Z INFO request served path=/api/v1/items status=200 duration=3ms "
        b"user=alice trace=4bf92f3577b34da6a3ce929d0e0e4736\n"
    )
    busy = (
        b"2024-05-01T10:00:00.123Z INFO refreshed token for alice expires=3600 "
        b"password=hunter2hunter2 url=https://app.example/x\n"
    )
    for label, line in (("clean lines", clean), ("a credential on every line", busy)):
        log = line * (8 * 1024 * 1024 // len(line))
        chunks = [log[i : i + 16 * 1024] for i in range(0, len(log), 16 * 1024)]
        took = best(
            args.repeat,
            lambda chunks=chunks: loop.run_until_complete(
                through_stage(
                    stage, flow("/api/v1/namespaces/default/pods/web/log", "follow=true"), chunks, "text/plain"
                )
            ),
        )
        print(f"logs ({label}): {len(log) / 1e6:.1f} MB in 16 KiB chunks, credentials-in-text:")
        print(f"  throughput                    {len(log) / took / 1e6:8.1f} MB/s")
    loop.close()


if __name__ == "__main__":
    main()
