"""What a CI job feels: 50 real kubectl invocations through kubegate and directly, same cluster, one run.

    KUBEBUILDER_ASSETS=... .venv/bin/python -m bench.ci_job [--rounds 3] [--results bench/results.md]

The upstream is the real control plane (kubegate/sandbox/envtest.py: etcd + kube-apiserver, a kubelet
stand-in that runs pods and serves logs). kubegate runs as the tests run it (sandbox/environment.py:
full policy with the demo rules, recording to SQLite with the request event durable before
forwarding, masking) and kubectl authenticates with `kubegate token` as its exec credential plugin, or
(CI mode, docs/ci.md) reads a token file that `kubegate token --write-file` fills once at the start of the
job (timed with the job); direct, kubectl uses a static token. Each job starts cold (fresh kubectl
discovery cache, fresh token cache, fresh namespace), rounds alternate the ways, and the figure is the
median wall time.
A last, verbose pass of each (kubectl -v=9, the plugin timed by a wrapper) splits every invocation
into plugin, TLS handshakes, discovery requests and the other requests. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bench.report import append, machine
from kubegate.sandbox.environment import Environment, start_environment
from kubegate.sandbox.envtest import EnvtestCluster, developers_are_admins

BIN = Path(sys.executable).parent
KUBECTL = str(BIN / "kubectl")
RESULTS = Path(__file__).with_name("results.md")
# client-go at -v=9: one line per response with its timings (milliseconds)
RESPONSE = re.compile(r'"Response" verb="(\w+)" url="([^"]+)".*?milliseconds=(\d+)([^\n]*)', re.S)
TLS = re.compile(r"tlsHandshakeMilliseconds=(\d+)")
# /api, /apis, /api/v1, /apis/<group>/<version>, /version, /openapi/...: after /k8s/<connection> through kubegate
DISCOVERY = re.compile(r"^(/k8s/[^/]+)?(/api(/v1)?|/apis(/[^/]+/[^/]+)?|/version|/openapi/.*)/?$")
DIRECT, KUBEGATE, TOKEN_FILE, STATIC = "direct", "kubegate", "kubegate, token file", "kubegate, fixed token"
# As the e2e tests stand (tests/conftest.py): the platform team bound `developers` to cluster-admin, kubegate's
# own identity has deploy/rbac.yaml; the policy masks everything built in and reads every pod write's body.
RBAC: list[dict[str, Any]] = [developers_are_admins()]
POLICIES: list[dict[str, Any]] = [
    {
        "name": "developers-work-everywhere",
        "subjects": {"groups": ["developers"]},
        "action": "allow",
        "mask": [
            "secret-values",
            "last-applied",
            "env-credentials",
            "configmap-keys",
            "serviceaccount-tokens",
            "credentials-in-text",
        ],
    },
    {
        "name": "no-privileged-containers",
        "match": {"resources": ["pods"], "verbs": ["create", "update", "patch"]},
        "condition": "has(object.spec) && has(object.spec.containers) && object.spec.containers.exists(c, "
        "has(c.securityContext) && has(c.securityContext.privileged) && c.securityContext.privileged)",
        "action": "deny",
        "message": "privileged containers are not allowed",
    },
    {
        "name": "kube-system-is-read-only",
        "match": {"namespaces": ["kube-system"], "verbs": ["create", "update", "patch", "delete"]},
        "action": "deny",
        "message": "kube-system is managed by the platform team",
    },
    {
        "name": "namespace-deletion-needs-a-human",
        "match": {"verbs": ["delete"], "resources": ["namespaces"]},
        "action": "review",
        "reviewers": {"groups": ["platform-oncall"]},
    },
]


def manifest(node: str) -> list[dict[str, Any]]:
    """20 objects a small service deploys: config, secrets, accounts, services, a deployment, pods."""
    label = {"app": "ci"}
    objs: list[dict[str, Any]] = []
    for i in range(6):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"ci-config-{i}", "labels": label},
                "data": {"settings.yaml": f"replicas: {i}\nfeature: on\n" * 20, "stage": "new"},
            }
        )
    for i in range(4):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"ci-secret-{i}", "labels": label},
                "stringData": {"password": f"hunter{i}-not-a-real-one", "url": "postgres://u:p@db/ci"},
            }
        )
    for i in range(2):
        objs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": f"ci-sa-{i}", "labels": label}})
    for i in range(3):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"ci-svc-{i}", "labels": label},
                "spec": {"selector": label, "ports": [{"port": 80 + i, "targetPort": 8080}]},
            }
        )
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "ci-web", "labels": label},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": label},
                "template": {
                    "metadata": {"labels": label},
                    "spec": {"containers": [{"name": "app", "image": "busybox"}]},
                },
            },
        }
    )
    for i in range(3):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"ci-pod-{i}", "labels": label},
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {"name": "app", "image": "busybox", "env": [{"name": "DB_PASSWORD", "value": "not-a-real-one"}]}
                    ],
                },
            }
        )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "ci-gate", "labels": label},
            "data": {"stage": "waiting"},
        }
    )
    assert len(objs) == 20
    return objs


def script(objs: list[dict[str, Any]], manifest_file: Path) -> Iterator[tuple[str, list[str]]]:
    """The 50 invocations, in order; ("bg", argv) starts a watch the next invocation satisfies."""
    yield "run", ["version", "-o", "yaml"]
    yield "run", ["api-resources"]
    yield "run", ["api-versions"]
    yield "run", ["auth", "can-i", "create", "deployments"]
    yield "run", ["apply", "-f", str(manifest_file)]
    yield "run", ["wait", "--for=condition=Ready", "pod", "-l", "app=ci", "--timeout=60s"]
    for obj in objs:  # 20
        yield "run", ["get", obj["kind"].lower(), obj["metadata"]["name"], "-o", "yaml"]
    for kind in ("pods", "configmaps", "secrets", "services", "serviceaccounts", "deployments"):
        yield "run", ["get", kind, "-l", "app=ci", "-o", "yaml"]
    for i in range(5):
        yield (
            "run",
            ["patch", "configmap", f"ci-config-{i}", "--type", "merge", "-p", f'{{"data":{{"stage":"patched-{i}"}}}}'],
        )
    yield "run", ["patch", "deployment", "ci-web", "-p", '{"spec":{"replicas":3}}']
    yield "run", ["label", "pod", "ci-pod-0", "ci/checked=yes"]
    yield "run", ["annotate", "service", "ci-svc-0", "ci/run=1"]
    for i in range(3):
        yield "run", ["logs", f"ci-pod-{i}"]
    yield "run", ["logs", "ci-pod-0", "--tail=20", "-c", "app"]
    yield "run", ["describe", "pod", "ci-pod-0"]
    yield "run", ["get", "events", "-o", "yaml"]
    yield "bg", ["wait", "--for=jsonpath={.data.stage}=done", "configmap/ci-gate", "--timeout=60s"]
    yield "run", ["patch", "configmap", "ci-gate", "--type", "merge", "-p", '{"data":{"stage":"done"}}']
    yield "run", ["delete", "-f", str(manifest_file), "--grace-period=0", "--force", "--wait=true"]
    yield "run", ["get", "all", "-o", "yaml"]


@dataclass
class Invocation:
    args: list[str]
    wall: float = 0.0
    plugin: float = 0.0
    tls: float = 0.0
    discovery: float = 0.0
    requests: float = 0.0
    calls: int = 0


@dataclass
class Job:
    target: str
    wall: float = 0.0
    invocations: list[Invocation] = field(default_factory=list)


@dataclass
class Side:
    """One way of reaching the cluster: a kubeconfig writer and what a fresh job needs."""

    name: str
    env: Environment
    root: Path
    runs: int = 0

    def kubeconfig(self, job: Path, plugin_log: Path | None) -> Path:
        path = job / "kubeconfig"
        if self.name == DIRECT:
            return self.env.cluster.write_kubeconfig(path, self.env.cluster.admin_token)
        if self.name == STATIC:
            return self.env.write_kubeconfig(path, token=self.env.issuer.mint("ci", ["developers"], lifetime=3600))
        self.env.write_kubeconfig(path, sub="ci")
        if self.name == TOKEN_FILE:  # the job's first step fills the file (job_start)
            doc = yaml.safe_load(path.read_text())
            doc["users"][0]["user"] = {"tokenFile": str(job / "token")}
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            return path
        if plugin_log is not None:  # a wrapper that times the plugin, for the verbose pass only
            doc = yaml.safe_load(path.read_text())
            user = doc["users"][0]["user"]["exec"]
            wrapper = job / "timed-plugin"
            wrapper.write_text(
                f'#!/bin/sh\ns=$(date +%s%N)\n"{user["command"]}" "$@"\nrc=$?\n'
                f'echo $(( $(date +%s%N) - s )) >> "{plugin_log}"\nexit $rc\n'
            )
            wrapper.chmod(0o755)
            user["command"] = str(wrapper)
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def job_start(self, job: Path) -> list[str]:
        """What the job runs once before its kubectl calls: for the token-file way, `kubegate token` as the
        plugin would run it, writing the file the kubeconfig reads."""
        if self.name != TOKEN_FILE:
            return []
        exec_user = self.env.write_kubeconfig(job / "plugin-kubeconfig", sub="ci").read_text()
        user = yaml.safe_load(exec_user)["users"][0]["user"]["exec"]
        env = [f"{e['name']}={e['value']}" for e in user.get("env", [])]
        return ["env", *env, user["command"], *user["args"], "--write-file", str(job / "token")]


async def kubectl(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    return proc.returncode or 0, err.decode(errors="replace")


def split(inv: Invocation, stderr: str) -> None:
    """The -v=9 response lines: TLS handshakes, discovery and other requests (milliseconds to seconds).
    kubectl runs the plugin inside its first round trip, so the plugin's time is taken off that request."""
    plugin = inv.plugin
    for m in RESPONSE.finditer(stderr):
        ms = int(m.group(3)) / 1000
        tls = TLS.search(m.group(4))
        inv.tls += int(tls.group(1)) / 1000 if tls else 0
        inv.calls += 1
        ms, plugin = max(0.0, ms - plugin), 0.0
        if DISCOVERY.match(urlsplit(m.group(2)).path):
            inv.discovery += ms
        else:
            inv.requests += ms


async def run_job(side: Side, verbose: bool) -> Job:
    """One cold job: fresh namespace, caches and kubeconfig; every invocation must succeed."""
    side.runs += 1
    slug = side.name.replace(", ", "-").replace(" ", "-")
    job_dir = side.root / f"{slug}-{side.runs}{'-v' if verbose else ''}"
    job_dir.mkdir(parents=True)
    namespace = f"ci-{slug}-{side.runs}{'v' if verbose else ''}"
    await asyncio.to_thread(side.env.cluster.control.ensure_namespace, namespace)
    plugin_log = job_dir / "plugin.log" if verbose else None
    config = side.kubeconfig(job_dir, plugin_log)
    objs = manifest(side.env.cluster.node)
    manifest_file = job_dir / "manifest.yaml"
    manifest_file.write_text(yaml.safe_dump_all(objs))
    # An installed kubegate's bytecode is compiled by pip; a PYTHONDONTWRITEBYTECODE in this environment
    # would have every plugin call compile its modules again.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        HOME=str(job_dir / "home"),
        XDG_CACHE_HOME=str(job_dir / "cache"),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    common = [f"--kubeconfig={config}", f"--cache-dir={job_dir / 'kube-cache'}", "-n", namespace]
    if verbose:
        common.append("-v=9")
    job = Job(side.name)
    background: tuple[Invocation, asyncio.Task[tuple[int, str]], float] | None = None
    first = side.job_start(job_dir)
    start = time.perf_counter()
    if first:
        proc = await asyncio.create_subprocess_exec(*first, env=env, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        check(proc.returncode or 0, err.decode(errors="replace"), first, side.name)
    for kind, args in script(objs, manifest_file):
        inv = Invocation(args)
        job.invocations.append(inv)
        t0 = time.perf_counter()
        before = plugin_log.read_text().split() if plugin_log and plugin_log.exists() else []
        if kind == "bg":
            background = (inv, asyncio.create_task(kubectl([*common, *args], env)), t0)
            await asyncio.sleep(0.3)  # the watch is open before the patch that satisfies it
            if plugin_log is not None and plugin_log.exists():
                inv.plugin = sum(int(x) for x in plugin_log.read_text().split()[len(before) :]) / 1e9
            continue
        rc, err = await kubectl([*common, *args], env)
        inv.wall = time.perf_counter() - t0
        check(rc, err, args, side.name)
        if verbose:
            after = plugin_log.read_text().split() if plugin_log and plugin_log.exists() else []
            inv.plugin = sum(int(x) for x in after[len(before) :]) / 1e9
            split(inv, err)
        if args[0] == "wait":  # the pods are up: give them some output for the logs steps
            for i in range(3):
                side.env.cluster.append_log(
                    namespace, f"ci-pod-{i}", "".join(f"line {n} of ci-pod-{i}\n" for n in range(200))
                )
        if background is not None and args[0] == "patch" and "ci-gate" in args:
            bg_inv, task, bg_start = background
            rc, err = await task
            bg_inv.wall = time.perf_counter() - bg_start
            check(rc, err, bg_inv.args, side.name)
            if verbose:
                split(bg_inv, err)
            background = None
    job.wall = time.perf_counter() - start
    assert len(job.invocations) == 50, len(job.invocations)
    return job


def check(rc: int, err: str, args: list[str], name: str) -> None:
    if rc != 0:
        tail = "\n".join(line for line in err.splitlines() if "I1" not in line[:3])[-2000:]
        raise RuntimeError(f"{name}: kubectl {' '.join(args)} failed ({rc}):\n{tail}")


def summary(jobs: dict[str, list[Job]], verbose: dict[str, Job], load: str) -> str:
    names = list(jobs)
    walls = {t: statistics.median(j.wall for j in runs) for t, runs in jobs.items()}
    ratio = walls[KUBEGATE] / walls[DIRECT]
    ci_ratio = walls[TOKEN_FILE] / walls[DIRECT]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = " | ".join(names)
    lines = [
        f"## {stamp}: CI job",
        "",
        f"- machine: {machine()}; load average before the rounds: {load}",
        f"- bench/ci_job.py: 50 kubectl invocations, real kube-apiserver (envtest), "
        f"{len(jobs[DIRECT])} cold job(s) per target, alternated; `{KUBEGATE}` is what a CI job runs "
        f"(`kubegate token` as exec plugin), `{TOKEN_FILE}` the CI mode (the token written once per job to a "
        "file kubectl reads as tokenFile, that write included in the job's time), "
        f"`{STATIC}` the same gateway with a fixed token (the proxy's "
        "share alone); ratios are against direct",
        "",
        f"| figure | {head} | target |",
        "| --- |" + " --- |" * (len(names) + 1),
        f"| job wall time (median), s | {' | '.join(_vs(walls, t) for t in names)} | "
        f"≤ 1.2x: exec plugin {'met' if ratio <= 1.2 else 'not met'} ({ratio:.2f}x), token file "
        f"{'met' if ci_ratio <= 1.2 else 'not met'} ({ci_ratio:.2f}x) |",
        f"| fastest job's wall time, s (the least disturbed by other load) | "
        f"{' | '.join(_vs({t: min(j.wall for j in runs) for t, runs in jobs.items()}, t) for t in names)} | |",
        f"| every job's wall time, s | {' | '.join(', '.join(f'{j.wall:.2f}' for j in jobs[t]) for t in names)} | |",
    ]
    for key, label in (
        ("wall", "verbose pass (-v=9), wall summed over invocations, s"),
        ("plugin", "credential plugin (kubegate token, timed by a wrapper), s"),
        ("tls", "TLS handshakes (client-go trace), s"),
        ("discovery", "discovery requests, s"),
        ("requests", "other requests, s"),
        ("calls", "HTTP requests"),
    ):
        totals = {t: sum(getattr(i, key) for i in j.invocations) for t, j in verbose.items()}
        lines.append(f"| {label} | {' | '.join(_vs(totals, t, key == 'calls') for t in names)} | |")
    lines += [
        "",
        "Per invocation, verbose pass (ms: wall / plugin / TLS / discovery / other requests; HTTP calls):",
        "",
        f"| # | kubectl | {head} |",
        "| --- | --- |" + " --- |" * len(names),
    ]
    for n, invs in enumerate(zip(*(verbose[t].invocations for t in names), strict=True), 1):
        shown = " ".join(Path(a).name if a.startswith("/") else a for a in invs[0].args[:4])[:48]
        lines.append(f"| {n} | {shown} | {' | '.join(_cell(i) for i in invs)} |")
    return "\n".join(lines)


def _vs(figures: dict[str, float], name: str, count: bool = False) -> str:
    value = f"{figures[name]:.0f}" if count else f"{figures[name]:.2f}"
    if name == DIRECT or not figures[DIRECT]:
        return value
    return f"{value} ({figures[name] / figures[DIRECT]:.2f}x)"


def _cell(i: Invocation) -> str:
    return (
        f"{i.wall * 1e3:.0f} / {i.plugin * 1e3:.0f} / {i.tls * 1e3:.0f} / {i.discovery * 1e3:.0f} / "
        f"{i.requests * 1e3:.0f}; {i.calls}"
    )


async def main_async(rounds: int, results: Path | None) -> str:
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # kubegate_command finds this venv's
    with tempfile.TemporaryDirectory(prefix="kubegate-ci-job-") as tmp:
        root = Path(tmp)
        cluster = EnvtestCluster(root / "cluster")
        env = await start_environment(root / "world", cluster=cluster, connection="envtest", policies=POLICIES)
        await asyncio.to_thread(cluster.seed, RBAC)
        try:
            sides = {name: Side(name, env, root / "jobs") for name in (DIRECT, KUBEGATE, TOKEN_FILE, STATIC)}
            for side in sides.values():  # warm-up: first binding, first TLS files, page cache
                await run_job(side, verbose=False)
            load = Path("/proc/loadavg").read_text().split()[:3]
            jobs: dict[str, list[Job]] = {name: [] for name in sides}
            for _ in range(rounds):
                for name, side in sides.items():
                    jobs[name].append(await run_job(side, verbose=False))
            verbose = {name: await run_job(side, verbose=True) for name, side in sides.items()}
        finally:
            await env.stop()
    text = summary(jobs, verbose, " ".join(load))
    print(text, flush=True)
    if results is not None:
        append(results, text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold jobs per target (median is reported)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to append the table")
    parser.add_argument("--no-results", action="store_true", help="print only")
    args = parser.parse_args()
    asyncio.run(main_async(args.rounds, None if args.no_results else args.results))


if __name__ == "__main__":
    main()
