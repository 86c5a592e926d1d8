"""Hold many watches open through one target and measure how late each fanned-out event arrives.

Prints `ready N` once every watch has its first (ADDED) event, then, after `--events` more events
reached every watch (or `--timeout`), one JSON line: events received and expected, latency p50/p99/max.
Latency is the monotonic clock at receipt minus the one bench.upstream stamped when the fan-out
started (CLOCK_MONOTONIC is one clock for every process on the machine).

Run (the harness does): python -m bench.watchclient --url URL --watches 1000 --events 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import aiohttp
import orjson
import uvloop

from bench.upstream import SENT_ANNOTATION

CONNECT_AT_ONCE = 64


async def watch(http: aiohttp.ClientSession, url: str, gate: asyncio.Semaphore, ready: list[int],
                latencies: list[float], events: int) -> None:
    async with gate:
        response = await http.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        if response.status != 200:
            raise RuntimeError(f"watch answered {response.status}: {(await response.read())[:300]!r}")
        await response.content.readline()
    ready[0] += 1
    try:
        for _ in range(events):
            line = await response.content.readline()
            received = time.monotonic_ns()
            if not line:
                return
            sent = int(orjson.loads(line)["object"]["metadata"]["annotations"][SENT_ANNOTATION])
            latencies.append((received - sent) / 1e6)
    finally:
        response.close()


async def run(args: argparse.Namespace) -> dict[str, float | int]:
    headers = {"Accept": "application/json"}
    if os.environ.get("BENCH_AUTHORIZATION"):
        headers["Authorization"] = os.environ["BENCH_AUTHORIZATION"]
    latencies: list[float] = []
    ready = [0]
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    connector = aiohttp.TCPConnector(limit=0, ssl=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        tasks = [asyncio.create_task(watch(http, args.url, gate, ready, latencies, args.events))
                 for _ in range(args.watches)]
        deadline = time.monotonic() + args.timeout
        while ready[0] < args.watches and time.monotonic() < deadline:
            failed = next((t for t in tasks if t.done() and t.exception()), None)
            if failed is not None:
                raise failed.exception()  # type: ignore[misc]
            await asyncio.sleep(0.05)
        print(f"ready {ready[0]}", flush=True)
        await asyncio.wait(tasks, timeout=max(deadline - time.monotonic(), 1))
        for task in tasks:
            task.cancel()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"received": len(latencies), "expected": args.watches * args.events, "p50_ms": q[49], "p99_ms": q[98],
            "max_ms": max(latencies, default=0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--watches", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    print(orjson.dumps(uvloop.run(run(args))).decode(), flush=True)


if __name__ == "__main__":
    main()
