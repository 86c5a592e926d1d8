"""kubegate's end-to-end benchmark: four targets, the same upstream, the same load, in one run.

    .venv/bin/python -m bench.run [--quick] [--components] [--workers N]

Starts a TLS upstream on loopback serving recorded Kubernetes JSON (nginx when installed or
installable, else bench.upstream), the targets (direct, kubectl proxy, kubegate identity only,
kubegate full pipeline), and measures each scenario with a load generator in its own process
(wrk, else bench.loadgen), targets interleaved round by round. Prints the table and appends it to
bench/results.md. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from bench import exec_throughput, nginx
from bench.fixtures import POD_PATH, PODS_PATH, SECRETS_PATH, WATCH_PATH, write_fixtures
from bench.loadgen import Load, run_load, wrk_path
from bench.processes import REPO, Process, free_port
from bench.profile import Profiler, top
from bench.report import (
    DIRECT,
    FULL,
    IDENTITY,
    PROXY,
    TARGETS,
    Row,
    added_at_most,
    append,
    at_least,
    at_least_ratio,
    at_most,
    at_most_ratio,
    render,
)
from bench.targets import (
    UPSTREAM_TOKEN,
    Target,
    gateway_config,
    start_events_upstream,
    start_kubectl_proxy,
    start_kubegate,
)
from kubegate.sandbox.issuer import DevIssuer
from kubegate.tls import ensure_serving_cert

RESULTS = Path(__file__).with_name("results.md")
COMPONENTS = ("bench.policy_decide", "bench.recording", "bench.masking", "bench.token_plugin")


@dataclass
class Settings:
    seconds: float = 5
    rounds: int = 3
    watches: int = 1000
    events: int = 20
    event_interval: float = 0.5
    secrets: int = 10_000
    pods: int = 500
    upstream: str = "auto"
    loadgen: str = "auto"
    install: bool = True
    workers: int = 1
    components: bool = False
    results: Path | None = RESULTS
    profile: Path | None = None
    only: str | None = None
    warmup: bool = True

    @classmethod
    def quick(cls, **kw: object) -> Settings:
        return cls(**{"seconds": 2, "rounds": 1, "events": 5, **kw})  # type: ignore[arg-type]

    @classmethod
    def smoke(cls, **kw: object) -> Settings:
        """Seconds, not minutes: every part runs once with tiny figures (CI's check that nothing rotted)."""
        return cls(
            **{
                "seconds": 0.3,
                "rounds": 1,
                "watches": 4,
                "events": 2,
                "event_interval": 0.05,
                "secrets": 20,
                "pods": 5,
                "warmup": False,
                **kw,
            }
        )  # type: ignore[arg-type]


@dataclass
class World:
    targets: dict[str, Target]
    events_url: str
    tool: str
    setup: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    profiles: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def profiled(
    w: World, settings: Settings, scenario: str, targets: tuple[str, ...] = (IDENTITY, FULL)
) -> AsyncIterator[None]:
    """py-spy on the kubegate targets while the block runs (with --profile); summaries go to w.profiles."""
    if settings.profile is None:
        yield
        return
    settings.profile.mkdir(parents=True, exist_ok=True)
    profilers = [
        Profiler(t.process.pid, settings.profile / f"{scenario}-{name.replace(' ', '-')}.txt")
        for name, t in w.targets.items()
        if name in targets and t.process is not None
    ]
    for profiler in profilers:
        await profiler.start()
    try:
        yield
    finally:
        for profiler in profilers:
            await profiler.stop()
            if profiler.output.exists():
                w.profiles.append(top(profiler.output))


@contextlib.asynccontextmanager
async def world(settings: Settings, workdir: Path) -> AsyncIterator[World]:
    """Start everything; stop everything on the way out, whatever happened."""
    setup: list[str] = []
    if settings.install and (settings.upstream in ("auto", "nginx") or settings.loadgen in ("auto", "wrk")):
        setup += nginx.ensure_tools(install=True)
    use_nginx = settings.upstream == "nginx" or (settings.upstream == "auto" and nginx.nginx_path() is not None)
    tool = "wrk" if settings.loadgen == "wrk" or (settings.loadgen == "auto" and wrk_path()) else "python"
    root = workdir / "fixtures"
    sizes = write_fixtures(root, secrets=settings.secrets, pods=settings.pods)
    certs = ensure_serving_cert(workdir / "tls", ["127.0.0.1", "localhost"], cn="bench upstream")
    processes: list[Process] = []
    issuer = DevIssuer(workdir / "issuer")
    try:
        events, match = await start_events_upstream(root, certs.cert, certs.key)
        processes.append(events)
        events_port = int(match.group(1))
        if use_nginx:
            port = free_port()
            proc = await nginx.start_nginx(workdir, root, certs.cert, certs.key, port, events_port)
            processes.append(Process("nginx", proc))
            await _wait_serving(f"https://127.0.0.1:{port}{POD_PATH}")
            upstream = f"https://127.0.0.1:{port}"
            setup.append(
                "upstream: nginx (Debian nginx-light, 1 worker) serving recorded JSON over TLS; "
                "watches proxied to bench.upstream"
            )
        else:
            upstream = f"https://127.0.0.1:{events_port}"
            setup.append("upstream: bench.upstream (aiohttp + uvloop) over TLS; nginx not available")
        setup.append(
            f"load generator: {'wrk (Debian), 1 thread, Lua script' if tool == 'wrk' else 'bench.loadgen'}"
            f" in its own process; watches: bench.watchclient"
        )
        await issuer.start()
        token = issuer.mint("bench", ["developers"], lifetime=6 * 3600)
        targets = {DIRECT: Target(DIRECT, upstream, f"Bearer {UPSTREAM_TOKEN}")}
        starts = [start_kubectl_proxy(workdir, upstream, certs.ca)]
        for name, pipeline in ((IDENTITY, "identity"), (FULL, "full")):
            config = gateway_config(workdir, pipeline, upstream, certs.ca, issuer.url, issuer.ca_file)
            starts.append(start_kubegate(name, config, pipeline, token, settings.workers))
        started = await asyncio.gather(*starts, return_exceptions=True)
        for result in started:
            if isinstance(result, Target):
                targets[result.name] = result
                if result.process is not None:
                    processes.append(result.process)
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        setup.append(
            f"targets: direct (TLS), kubectl proxy (plain HTTP on loopback, as it serves), "
            f"kubegate identity only and full pipeline (TLS, {settings.workers} worker(s), "
            "SQLite recording, all built-in masks)"
        )
        setup.append(
            f"runs: {settings.rounds} round(s) of {settings.seconds:g} s per target and scenario, "
            "targets interleaved; figure = median of rounds"
        )
        if settings.profile is not None:
            setup.append(
                "profiled with py-spy while measuring: the sampler shares the cores, so kubegate's figures "
                "in this run are lower than without it"
            )
        yield World({t: targets[t] for t in TARGETS}, f"https://127.0.0.1:{events_port}", tool, setup, sizes)
    finally:
        await issuer.stop()
        for process in reversed(processes):
            await process.stop()


async def _wait_serving(url: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    status: int | str = "no answer"
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url, ssl=False) as response:
                    if response.status == 200:
                        return
                    status = response.status
            except aiohttp.ClientError as exc:
                status = repr(exc)
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {within:g}s (last: {status})")


async def measure(
    w: World, settings: Settings, workdir: Path, scenario: str, path: str, connections: int
) -> dict[str, list[Load]]:
    """Rounds of one request shape against every target, interleaved, after a warm-up each."""
    loads: dict[str, list[Load]] = {t: [] for t in w.targets}
    for target in w.targets.values() if settings.warmup else ():
        await run_load(target.url(path), target.authorization, connections, min(1, settings.seconds), workdir, w.tool)
    async with profiled(w, settings, scenario):
        for _ in range(settings.rounds):
            for name, target in w.targets.items():
                loads[name].append(
                    await run_load(
                        target.url(path), target.authorization, connections, settings.seconds, workdir, w.tool
                    )
                )
    return loads


def _median(loads: list[Load], attr: str) -> float | None:
    good = [getattr(load, attr) for load in loads if load.ok]
    return statistics.median(good) if good else None


def _errors(loads: dict[str, list[Load]]) -> str:
    bad = [
        f"{name}: {sum(x.errors + x.status_errors for x in runs)} errors"
        for name, runs in loads.items()
        if any(not x.ok for x in runs)
    ]
    return "; ".join(bad)


async def http_rows(w: World, settings: Settings, workdir: Path) -> list[Row]:
    rows: list[Row] = []
    if settings.only == "list":
        return await secrets_rows(w, settings, workdir)
    c1 = await measure(w, settings, workdir, "get-c1", POD_PATH, 1)
    rows.append(
        Row(
            "GET one pod, concurrency 1: p50",
            "ms",
            {t: _median(c1[t], "p50_ms") for t in TARGETS},
            added_at_most(1.0, "ms"),
            _errors(c1),
        )
    )
    rows.append(
        Row("GET one pod, concurrency 1: p99", "ms", {t: _median(c1[t], "p99_ms") for t in TARGETS}, note=_errors(c1))
    )
    c32 = await measure(w, settings, workdir, "get-c32", POD_PATH, 32)
    rows.append(
        Row(
            "GET one pod, concurrency 32",
            "req/s",
            {t: _median(c32[t], "rps") for t in TARGETS},
            at_least_ratio(0.5, PROXY),
            _errors(c32),
        )
    )
    pods = await measure(w, settings, workdir, "list-pods", PODS_PATH, 1)
    rows.append(
        Row(
            f"LIST {settings.pods} pods ({w.sizes[PODS_PATH] / 1e6:.1f} MB), concurrency 1: p50",
            "ms",
            {t: _median(pods[t], "p50_ms") for t in TARGETS},
            note=_errors(pods),
        )
    )
    return rows + await secrets_rows(w, settings, workdir)


async def secrets_rows(w: World, settings: Settings, workdir: Path) -> list[Row]:
    secrets = await measure(w, settings, workdir, "list-secrets", SECRETS_PATH, 1)
    return [
        Row(
            f"masked LIST {settings.secrets:,} Secrets ({w.sizes[SECRETS_PATH] / 1e6:.1f} MB), concurrency 1: p50",
            "ms",
            {t: _median(secrets[t], "p50_ms") for t in TARGETS},
            at_most_ratio(3.0, DIRECT),
            _errors(secrets),
        )
    ]


async def watch_once(w: World, target: Target, settings: Settings) -> tuple[dict[str, float], int | None]:
    """Open the watches, fire the events, return the client's figures and the target's peak RSS."""
    client, match = await Process.start(
        "bench.watchclient",
        [
            sys.executable,
            "-m",
            "bench.watchclient",
            "--url",
            target.url(WATCH_PATH + "?watch=1"),
            "--watches",
            str(settings.watches),
            "--events",
            str(settings.events),
        ],
        r"^ready (\d+)",
        within=180,
        env=_env(target.authorization),
    )
    try:
        if int(match.group(1)) < settings.watches:
            raise RuntimeError(f"only {match.group(1)} of {settings.watches} watches opened through {target.name}")
        rss = target.rss()
        async with aiohttp.ClientSession() as http:
            for _ in range(settings.events):
                async with http.post(f"{w.events_url}/bench/fire", ssl=False) as response:
                    await response.read()
                await asyncio.sleep(settings.event_interval)
        rss = max(rss or 0, target.rss() or 0) or None
        await asyncio.wait_for(client.proc.wait(), 120)
        figures = orjson.loads(next(line for line in reversed(client.lines) if line.startswith("{")))
    finally:
        await client.stop()
    await _wait_watchers_gone(w.events_url)
    return figures, rss


async def _wait_watchers_gone(events_url: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(f"{events_url}/bench/watchers", ssl=False) as response:
                if (await response.json())["watchers"] == 0:
                    return
            await asyncio.sleep(0.1)


def _env(authorization: str) -> dict[str, str]:
    return {**os.environ, "BENCH_AUTHORIZATION": authorization}


async def watch_rows(w: World, settings: Settings) -> list[Row]:
    rss: dict[str, float | None] = {}
    p99: dict[str, float | None] = {}
    notes: list[str] = []
    for name, target in w.targets.items():
        async with profiled(w, settings, "watch", (name,)) if name in (IDENTITY, FULL) else contextlib.nullcontext():
            figures, peak = await watch_once(w, target, settings)
        rss[name] = peak / 1e6 if peak is not None else None
        p99[name] = figures["p99_ms"]
        if figures["received"] < figures["expected"]:
            notes.append(f"{name}: {figures['received']} of {figures['expected']} events arrived")
    label = f"{settings.watches:,} watches, {settings.events} events fanned out"
    return [
        Row(f"{label}: RSS of the proxy", "MB", rss, at_most(200, "MB"), "; ".join(notes)),
        Row(f"{label}: event latency p99", "ms", p99, at_most(50, "ms"), "; ".join(notes)),
    ]


async def exec_row(settings: Settings) -> Row:
    """Exec throughput through the sandbox (exec needs a cluster that runs commands, not nginx)."""
    megabytes = max(1, min(200, int(settings.seconds * 20)))
    best = await asyncio.to_thread(exec_throughput.throughput, megabytes, settings.rounds)
    values: dict[str, float | None] = {
        DIRECT: best[exec_throughput.DIRECT_LABEL],
        FULL: best[exec_throughput.RECORDED_LABEL],
    }
    note = f"{megabytes} MB per exec; with credentials-in-text masking: {best[exec_throughput.MASKED_LABEL]:.1f} MB/s"
    return Row("exec stream throughput, recording on", "MB/s", values, at_least(50, "MB/s"), note)


async def components() -> str:
    """The component benchmarks, run as they are (each is one place for its own figures)."""
    out = []
    for module in COMPONENTS:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO
        )
        text, _ = await proc.communicate()
        out.append(f"$ python -m {module}\n{text.decode(errors='replace').rstrip()}")
    return "Component figures:\n\n```\n" + "\n\n".join(out) + "\n```"


async def run(settings: Settings) -> str:
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # nginx's workers run as nobody and read the fixtures from here
        async with world(settings, workdir) as w:
            rows = await http_rows(w, settings, workdir) if settings.only in (None, "http", "list") else []
            rows += await watch_rows(w, settings) if settings.only in (None, "watch") else []
            if settings.only in (None, "exec"):
                rows.append(await exec_row(settings))
            setup = w.setup
            profiles = w.profiles
    extra = await components() if settings.components else ""
    if profiles:
        extra += ("\n\n" if extra else "") + "Profiles (py-spy):\n\n```\n" + "\n\n".join(profiles) + "\n```"
    text = render(rows, setup, extra)
    print(text, flush=True)
    if settings.results is not None:
        append(settings.results, text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (about two minutes)")
    parser.add_argument("--smoke", action="store_true", help="seconds, tiny figures: checks the harness works")
    parser.add_argument("--seconds", type=float, help="length of each measured run")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (median is reported)")
    parser.add_argument("--watches", type=int, help="watches held open at once")
    parser.add_argument("--workers", type=int, default=1, help="kubegate serve --workers for the full pipeline")
    parser.add_argument("--upstream", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install nginx or wrk")
    parser.add_argument("--components", action="store_true", help="also run the component benchmarks")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to append the table")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of kubegate into this folder")
    parser.add_argument(
        "--only",
        choices=("http", "list", "watch", "exec"),
        help="run only these scenarios (list: only the masked LIST of Secrets)",
    )
    args = parser.parse_args()
    given = {
        k: v
        for k, v in {"seconds": args.seconds, "rounds": args.rounds, "watches": args.watches}.items()
        if v is not None
    }
    common = dict(
        upstream=args.upstream,
        loadgen=args.loadgen,
        install=not args.no_install,
        workers=args.workers,
        components=args.components,
        results=args.results,
        profile=args.profile,
        only=args.only,
        **given,
    )
    make = Settings.smoke if args.smoke else Settings.quick if args.quick else Settings
    uvloop.run(stoppable(run(make(**common))))


async def stoppable(work: Coroutine[Any, Any, str]) -> str:
    """SIGTERM cancels the run like Ctrl-C does, so every child process is stopped on the way out."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


if __name__ == "__main__":
    main()
