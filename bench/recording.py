"""Requests per second with recording on and off, in one run, against an in-process upstream.

Each request is built as a Flow and forwarded with aiohttp; with recording on it also goes through
RecorderStage: the request event is committed (group commit, synchronous=FULL on SQLite) before the
forward, and the response is recorded after. Printed, never asserted.
Run: .venv/bin/python bench/recording.py [--requests 3000] [--concurrency 64] [--store-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from kubegate.flow import Flow
from kubegate.identity.model import Identity
from kubegate.kube.requestinfo import parse_request_info
from kubegate.recording.recorder import Recorder
from kubegate.recording.stage import RecorderStage
from kubegate.store.engine import Store

PATH = "/api/v1/namespaces/default/pods/web-0"
BODY = b'{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-0","namespace":"default"},"spec":{}}' * 10
IDENTITY = Identity(issuer="https://idp.example", subject="bench", username="idp#bench", groups=("bench",))


def make_flow(worker: int) -> Flow:
    request = SimpleNamespace(
        headers={"Kubectl-Session": f"bench-{worker}", "Kubectl-Command": "kubectl get", "User-Agent": "bench"},
        remote="127.0.0.1",
    )
    flow = Flow(
        request=request,
        connection=SimpleNamespace(name="bench"),  # type: ignore[arg-type]
        method="GET",
        raw_path=PATH,
        query_string="",
        headers=CIMultiDict(),
    )
    flow.identity, flow.info = IDENTITY, parse_request_info("GET", PATH)
    return flow


async def run(upstream: str, stage: RecorderStage | None, requests: int, concurrency: int) -> tuple[float, list[float]]:
    waits: list[float] = []
    remaining = iter(range(requests))

    async def worker(n: int, http: aiohttp.ClientSession) -> None:
        for _ in remaining:
            flow = make_flow(n)
            if stage is not None:
                flow.session_id = stage.recorder.session_for(flow)  # the session stage's job
                started = time.perf_counter()
                await stage.on_request(flow)
                waits.append(time.perf_counter() - started)
            async with http.get(upstream + PATH) as resp:
                flow.response_status = resp.status
                if stage is not None:
                    await stage.on_response(flow)
                async for chunk in resp.content.iter_any():
                    if stage is not None:
                        await stage.on_chunk(flow, chunk)
            if stage is not None:
                await stage.on_end(flow)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(n, http) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, waits


async def main(args: argparse.Namespace) -> None:
    app = web.Application()
    app.router.add_get(PATH, lambda _: web.Response(body=BODY, content_type="application/json"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(args.store_url or f"sqlite:///{tmp}/bench.db")
        recorder = Recorder(store)
        stage = RecorderStage(recorder)
        await run(upstream, stage, min(200, args.requests), args.concurrency)  # warm up both paths
        await run(upstream, None, min(200, args.requests), args.concurrency)
        commits_before = recorder.commits
        off, _ = await run(upstream, None, args.requests, args.concurrency)
        on, waits = await run(upstream, stage, args.requests, args.concurrency)
        await recorder.flush()
        commits = recorder.commits - commits_before
        await recorder.close()
        await store.close()
    await runner.cleanup()
    waits.sort()
    print(f"store: {store.display_url.split('@')[-1]}  requests: {args.requests}  concurrency: {args.concurrency}")
    print(f"recording off: {off:8.0f} req/s")
    print(f"recording on:  {on:8.0f} req/s  ({on / off:.0%} of off)")
    print(f"commits: {commits} for {2 * args.requests} events ({2 * args.requests / max(commits, 1):.1f} per commit)")
    print(
        f"request-event commit wait: p50 {statistics.median(waits) * 1000:.2f} ms, "
        f"p99 {waits[int(len(waits) * 0.99)] * 1000:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--store-url", default="", help="default: a temporary SQLite file")
    asyncio.run(main(parser.parse_args()))
