"""1, 2 and 3 kubegate replicas on one PostgreSQL: throughput, latency, and whether the store serializes them.

    .venv/bin/python -m bench.replicas [--seconds 5] [--connections 32] [--store-url postgresql://...]

Each replica is `kubegate serve` with the full pipeline (policy with every built-in mask, recording with
the request event committed before forwarding) on its own port, all recording into one fresh database
on the PostgreSQL server of the tests (KUBEGATE_TEST_POSTGRES, default 127.0.0.1:5432); the upstream is
the benchmark's (nginx serving the recorded pod). The load is a small GET at `--connections` in all,
split evenly over the replicas (one wrk per replica, run at once). Figures per replica count: requests/s
summed, p50 and p99 (the worst replica's), and the store's side: transactions committed (pg_stat_database),
the recorder's commits and events (their /metrics and the events table), and how often a backend of the
database waited on a lock (pg_stat_activity sampled every 10 ms). On 2 cores the replicas share the
CPU, so throughput cannot grow with replicas; the point is that no lock serializes them.
Printed and appended to bench/results.md; never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import statistics
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import uvloop
import yaml
from sqlalchemy.engine import make_url

from bench import nginx
from bench.fixtures import POD_PATH, write_fixtures
from bench.loadgen import Load, run_load, wrk_path
from bench.processes import Process, free_port
from bench.report import append, machine
from bench.targets import gateway_config, start_events_upstream, start_kubegate
from kubegate.sandbox.issuer import DevIssuer
from kubegate.tls import ensure_serving_cert

RESULTS = Path(__file__).with_name("results.md")
PG_URL = os.environ.get("KUBEGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
COMMIT_SUM, COMMIT_COUNT = "kubegate_recorder_commit_seconds_sum", "kubegate_recorder_commit_seconds_count"
METRIC = re.compile(r"^(kubegate_recorder_commits|kubegate_recorder_commit_seconds_(?:sum|count)) (\S+)$", re.M)


@dataclass
class Figures:
    replicas: int
    rps: float
    p50: float
    p99: float
    errors: int
    xact_commits: int
    recorder_commits: float
    events: int
    commit_ms: float
    lock_waits: float  # share of samples in which some backend waited on a lock
    busy: float  # mean backends active per sample
    locks: str  # the lock wait events seen, most frequent first (transactionid: a row another transaction holds)


async def metrics(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(f"{base}/metrics", ssl=False) as response:
        text = await response.text()
    return {m.group(1): float(m.group(2)) for m in METRIC.finditer(text)}


async def sample(pg: asyncpg.Connection, database: str, stop: asyncio.Event) -> tuple[float, float, str]:
    """Share of samples with a lock wait, mean active backends, and which locks were waited for."""
    waits = samples = active = 0
    kinds: Counter[str] = Counter()
    while not stop.is_set():
        rows = await pg.fetch(
            "SELECT wait_event_type, wait_event, state FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        samples += 1
        locked = [r["wait_event"] for r in rows if r["wait_event_type"] == "Lock"]
        waits += bool(locked)
        kinds.update(locked)
        active += sum(r["state"] == "active" for r in rows)
        await asyncio.sleep(0.01)
    return waits / max(1, samples), active / max(1, samples), ", ".join(f"{k} {n}" for k, n in kinds.most_common(3))


async def measure(
    replicas: list[tuple[str, str]], token: str, pg: asyncpg.Connection, database: str, args: argparse.Namespace
) -> Figures:
    workdir = Path(args.workdir)
    per = max(1, args.connections // len(replicas))
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # warm-up: TLS, the first binding lookups, the first commits
            await asyncio.gather(*(run_load(api + POD_PATH, token, per, 1, workdir, args.tool) for api, _ in replicas))
        before = [await metrics(http, base) for _, base in replicas]
        xact0 = await pg.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database)
        events0 = await pg.fetchval("SELECT count(*) FROM events")
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(pg, database, stop))
        loads: list[Load] = await asyncio.gather(
            *(run_load(api + POD_PATH, token, per, args.seconds, workdir, args.tool) for api, _ in replicas)
        )
        stop.set()
        lock_waits, busy, locks = await sampler
        xact1 = await pg.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database)
        events1 = await pg.fetchval("SELECT count(*) FROM events")
        after = [await metrics(http, base) for _, base in replicas]

    def delta(name: str) -> float:
        return sum(a.get(name, 0) - b.get(name, 0) for a, b in zip(after, before, strict=True))

    commits = delta("kubegate_recorder_commits")
    return Figures(
        replicas=len(replicas),
        rps=sum(load.rps for load in loads),
        p50=statistics.median(load.p50_ms for load in loads),
        p99=max(load.p99_ms for load in loads),
        errors=sum(load.errors + load.status_errors for load in loads),
        xact_commits=xact1 - xact0,
        recorder_commits=commits,
        events=events1 - events0,
        commit_ms=1000
        * delta("kubegate_recorder_commit_seconds_sum")
        / max(1, delta("kubegate_recorder_commit_seconds_count")),
        lock_waits=lock_waits,
        busy=busy,
        locks=locks or "none",
    )


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-replicas-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)
        args.workdir = str(workdir)
        args.tool = "wrk" if wrk_path() else "python"
        root = workdir / "fixtures"
        write_fixtures(root, secrets=10, pods=5)
        certs = ensure_serving_cert(workdir / "tls", ["127.0.0.1", "localhost"], cn="bench upstream")
        base = make_url(args.store_url)
        database = f"kubegate_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False))
        await admin.execute(f'CREATE DATABASE "{database}"')
        store_url = base.set(database=database).render_as_string(hide_password=False)
        processes: list[Process] = []
        issuer = DevIssuer(workdir / "issuer")
        results: list[Figures] = []
        try:
            events, match = await start_events_upstream(root, certs.cert, certs.key)
            processes.append(events)
            upstream = f"https://127.0.0.1:{match.group(1)}"
            if nginx.nginx_path() is not None:
                port = free_port()
                proc = await nginx.start_nginx(workdir, root, certs.cert, certs.key, port, int(match.group(1)))
                processes.append(Process("nginx", proc))
                upstream = f"https://127.0.0.1:{port}"
                await asyncio.sleep(0.5)
            await issuer.start()
            token = "Bearer " + issuer.mint("bench", ["developers"], lifetime=3600)
            replicas: list[tuple[str, str]] = []
            pg = await asyncpg.connect(store_url.replace("postgresql+asyncpg", "postgresql"))
            for n in range(1, args.max_replicas + 1):
                config = gateway_config(workdir, f"replica-{n}", upstream, certs.ca, issuer.url, issuer.ca_file)
                doc = yaml.safe_load(config.read_text())
                doc["store"] = {"url": store_url}
                config.write_text(yaml.safe_dump(doc, sort_keys=False))
                target = await start_kubegate(f"replica {n}", config, "full", token, 1)
                assert target.process is not None
                processes.append(target.process)
                replicas.append((target.base, target.base.split("/k8s/")[0]))
                results.append(await measure(replicas, token, pg, database, args))
                print(results[-1], flush=True)
            await pg.close()
        finally:
            await issuer.stop()
            for process in reversed(processes):
                await process.stop()
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            await admin.close()
    text = report(results, args)
    print(text, flush=True)
    if not args.no_results:
        append(RESULTS, text)
    return text


def report(results: list[Figures], args: argparse.Namespace) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    one = results[0].rps or 1
    lines = [
        f"## {stamp}: replicas on one PostgreSQL",
        "",
        f"- machine: {machine()}; load average after the run: {load}",
        f"- bench/replicas.py: `kubegate serve` (full pipeline, recording to one PostgreSQL database at "
        f"{make_url(args.store_url).host}:{make_url(args.store_url).port}), GET one pod at {args.connections} "
        f"connections in all split over the replicas ({args.tool}, one per replica), {args.seconds:g} s",
        "",
        "| replicas | req/s (sum) | vs 1 replica | p50 ms | p99 ms (worst) | errors | PostgreSQL commits | "
        "recorder commits | events | events per commit | commit ms (mean) | samples with a lock wait | "
        "active backends (mean) | lock waits seen (samples) |",
        "|" + " --- |" * 14,
    ]
    for f in results:
        lines.append(
            f"| {f.replicas} | {f.rps:,.0f} | {f.rps / one:.2f}x | {f.p50:.2f} | {f.p99:.1f} | {f.errors} | "
            f"{f.xact_commits:,} | {f.recorder_commits:,.0f} | {f.events:,} | "
            f"{f.events / max(1, f.recorder_commits):.1f} | {f.commit_ms:.2f} | {f.lock_waits:.1%} | "
            f"{f.busy:.2f} | {f.locks} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--max-replicas", type=int, default=3)
    parser.add_argument("--store-url", default=PG_URL)
    parser.add_argument("--no-results", action="store_true", help="print only")
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
