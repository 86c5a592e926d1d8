"""How long kubectl waits for `kubegate token`, its exec credential plugin, per kubectl call: median of
20 runs, printed, never asserted.

Run: .venv/bin/python -m bench.token_plugin [--runs 20]
Paths: a cached development-issuer token (what every kubectl call of a CI job but the first pays), run
as a kubeconfig written by kubegate runs it (cli/invocation.py: `python -S -P`, standard library only)
and as the `kubegate token` script; the script with --no-cache (a fetch from the issuer over TLS), and
with --from-env (no network, no cache).
The target for the cached path is under 100 ms; Python's own start-up is printed for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubegate.cli.invocation import token_plugin
from kubegate.sandbox.issuer import DevIssuer

SCRIPT = Path(sys.executable).with_name("kubegate")


def median_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def serve_issuer(state_dir: Path, ready: threading.Event, box: list[DevIssuer], stop: threading.Event) -> None:
    async def run() -> None:
        async with DevIssuer(state_dir) as issuer:
            box.append(issuer)
            ready.set()
            await asyncio.to_thread(stop.wait)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="kubegate-bench-token-") as tmp:
        ready, stop, box = threading.Event(), threading.Event(), []
        thread = threading.Thread(target=serve_issuer, args=(Path(tmp) / "issuer", ready, box, stop))
        thread.start()
        ready.wait(30)
        issuer = box[0]
        try:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # see bench/ci_job.py
            env |= {"XDG_CACHE_HOME": str(Path(tmp) / "cache"), "KUBERNETES_EXEC_INFO": "{}"}
            source = ["--dev-issuer", issuer.url, "--ca", str(issuer.ca_file), "--sub", "ci"]
            dev = [str(SCRIPT), "token", *source]
            plugin = token_plugin(source)
            as_kubeconfig = [plugin["command"], *plugin["args"]]
            plugin_env = env | {e["name"]: e["value"] for e in plugin["env"]}
            subprocess.run(dev, env=env, check=True, stdout=subprocess.PIPE)  # fills the cache
            env["T"] = subprocess.run(
                [str(SCRIPT), "sandbox", "token", "--issuer", issuer.url, "--ca", str(issuer.ca_file), "--sub", "ci"],
                env=env,
                check=True,
                text=True,
                stdout=subprocess.PIPE,
            ).stdout.strip()
            figures = {
                "python -c pass (start-up floor)": median_ms([sys.executable, "-c", "pass"], env, runs),
                "python -S -P -c pass (the plugin's interpreter flags)": median_ms(
                    [sys.executable, "-S", "-P", "-c", "pass"], env, runs
                ),
                "the kubeconfig's plugin (python -S -P), cached dev-issuer token": median_ms(
                    as_kubeconfig, plugin_env, runs
                ),
                "kubegate token (the script), cached dev-issuer token": median_ms(dev, env, runs),
                "kubegate token --no-cache (fetch over TLS)": median_ms([*dev, "--no-cache"], env, runs),
                "kubegate token --from-env": median_ms([str(SCRIPT), "token", "--from-env", "T"], env, runs),
            }
        finally:
            stop.set()
            thread.join()
    print(f"median of {runs} runs (target for the cached path: under 100 ms)")
    for label, ms in figures.items():
        print(f"  {label:<66} {ms:7.1f} ms")


if __name__ == "__main__":
    main()
