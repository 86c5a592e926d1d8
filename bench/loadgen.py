"""Load generators, each in its own process: wrk (Debian's, with a Lua script) or a small asyncio client.

Both answer the same question for one target and one request: how many requests completed in the
time given, and the latency p50/p99 of each. wrk is used when installed (it costs far less CPU
than any Python client, which matters on a small machine shared by client, proxy and upstream);
`python -m bench.loadgen` is the fallback and prints the same JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import orjson
import uvloop

from bench.processes import die_with_parent

WRK_SCRIPT = """\
local authorization = os.getenv("BENCH_AUTHORIZATION")
wrk.headers["Accept"] = "application/json"
if authorization and authorization ~= "" then wrk.headers["Authorization"] = authorization end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "seconds": %.6f, "errors": %d, "status_errors": %d, '
    .. '"p50_ms": %.4f, "p99_ms": %.4f}\\n', summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
"""


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    errors: int
    status_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.errors == 0 and self.status_errors == 0


def wrk_path() -> str | None:
    return shutil.which("wrk")


async def run_load(url: str, authorization: str, connections: int, seconds: float, workdir: Path, tool: str) -> Load:
    """One measured run in a new process; `tool` is "wrk" or "python"."""
    env = {**os.environ, "BENCH_AUTHORIZATION": authorization}
    if tool == "wrk":
        script = workdir / "bench.lua"
        if not script.exists():
            script.write_text(WRK_SCRIPT)
        argv = [
            wrk_path() or "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(seconds, 1):.0f}s",
            "--timeout",
            "60s",
            "-s",
            str(script),
            url,
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            url,
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ]
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=die_with_parent
    )
    out, err = await proc.communicate()
    line = next((raw for raw in out.splitlines() if raw.startswith(b"{")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return Load(**orjson.loads(line))


async def _client(url: str, authorization: str, connections: int, seconds: float) -> Load:
    headers = {"Accept": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    latencies: list[float] = []
    errors = status_errors = 0
    connector = aiohttp.TCPConnector(limit=connections, ssl=False)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal errors, status_errors
            while time.perf_counter() < deadline:
                begun = time.perf_counter()
                try:
                    async with http.get(url) as response:
                        await response.read()
                        status_errors += response.status >= 400
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - begun)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0] if latencies else 0] * 99
    return Load(len(latencies), elapsed, errors, status_errors, q[49] * 1000, q[98] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    load = uvloop.run(_client(args.url, os.environ.get("BENCH_AUTHORIZATION", ""), args.connections, args.seconds))
    print(orjson.dumps(asdict(load)).decode(), flush=True)


if __name__ == "__main__":
    main()
