"""A few-second run of the whole benchmark harness, so it never rots: behaviour only, no timings.

It uses the harness's own upstream and load generator (always available), the real kubectl proxy,
and kubegate's full pipeline behind `kubegate serve --workers 2`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HTTP_SCENARIOS = (
    "GET one pod, concurrency 1: p50",
    "GET one pod, concurrency 1: p99",
    "GET one pod, concurrency 32",
    "LIST 5 pods",
    "masked LIST 20 Secrets",
)
NUMBER = re.compile(r"^[\d,.]+$")


def rows(results: str) -> dict[str, list[str]]:
    table = [line for line in results.splitlines() if line.startswith("| ") and not line.startswith("| scenario")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)}


def test_smoke_run_measures_every_target_and_appends_the_table(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--upstream",
            "python",
            "--loadgen",
            "python",
            "--no-install",
            "--workers",
            "2",
            "--results",
            str(results),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# kubegate benchmark results")
    assert text.count("\n## ") == 1 and "- machine: " in text
    assert "upstream: bench.upstream" in text and "load generator: bench.loadgen" in text
    assert text.split("\n## ", 1)[1] in run.stdout  # what is appended is what was printed

    table = rows(text)
    for scenario in HTTP_SCENARIOS:
        cells = next(cells for name, cells in table.items() if name.startswith(scenario))
        unit, figures, ratios = cells[0], cells[1:5], cells[5:9]
        assert unit in ("ms", "req/s")
        assert all(NUMBER.match(f) for f in figures), (scenario, figures)  # every target answered, no errors
        assert all(r.endswith("x") for r in ratios), (scenario, ratios)
    memory = next(cells for name, cells in table.items() if name.endswith("RSS of the proxy"))
    assert memory[1] == "—" and all(NUMBER.match(f) for f in memory[2:5])  # direct has no proxy to measure
    latency = next(cells for name, cells in table.items() if name.endswith("event latency p99"))
    assert all(NUMBER.match(f) for f in latency[1:5])
    assert "arrived" not in latency[-1]  # every fanned-out event reached every watch
    exec_row = next(cells for name, cells in table.items() if name.startswith("exec stream"))
    assert NUMBER.match(exec_row[1]) and NUMBER.match(exec_row[4]), exec_row  # direct and full pipeline
    assert "with credentials-in-text masking" in text and "≥ 50 MB/s" in text
    assert (
        "≥ 0.5x kubectl proxy" in text
        and "≤ 3x direct" in text
        and "≤ +1 ms over direct" in text
        and "≤ 200 MB" in text
        and "≤ 50 ms" in text
    )
