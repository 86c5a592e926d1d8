"""The results table: each scenario's figure per target, kubegate's ratios, and the issue's targets.

A ratio is kubegate's figure divided by the other target's, in the scenario's own unit: for latency
and memory above 1.0x is worse, for requests/s below 1.0x is worse. Ratios, not absolute figures,
are what we quote: the absolute ones depend on the machine.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DIRECT, PROXY, IDENTITY, FULL = "direct", "kubectl proxy", "kubegate identity", "kubegate full"
TARGETS = (DIRECT, PROXY, IDENTITY, FULL)

Check = Callable[[dict[str, float | None]], tuple[str, bool | None]]


@dataclass
class Row:
    scenario: str
    unit: str
    values: dict[str, float | None] = field(default_factory=dict)
    check: Check | None = None
    note: str = ""


def ratio(values: dict[str, float | None], kubegate: str, other: str) -> float | None:
    a, b = values.get(kubegate), values.get(other)
    return a / b if a is not None and b else None


def at_most_ratio(limit: float, other: str) -> Check:
    def check(values: dict[str, float | None]) -> tuple[str, bool | None]:
        r = ratio(values, FULL, other)
        return f"≤ {limit:g}x {other}", None if r is None else r <= limit

    return check


def at_least_ratio(limit: float, other: str) -> Check:
    def check(values: dict[str, float | None]) -> tuple[str, bool | None]:
        r = ratio(values, FULL, other)
        return f"≥ {limit:g}x {other}", None if r is None else r >= limit

    return check


def added_at_most(limit: float, unit: str) -> Check:
    def check(values: dict[str, float | None]) -> tuple[str, bool | None]:
        full, direct = values.get(FULL), values.get(DIRECT)
        if full is None or direct is None:
            return f"≤ +{limit:g} {unit} over direct", None
        return f"≤ +{limit:g} {unit} over direct (now +{full - direct:.2f})", full - direct <= limit

    return check


def at_least(limit: float, unit: str) -> Check:
    def check(values: dict[str, float | None]) -> tuple[str, bool | None]:
        full = values.get(FULL)
        return f"≥ {limit:g} {unit}", None if full is None else full >= limit

    return check


def at_most(limit: float, unit: str) -> Check:
    def check(values: dict[str, float | None]) -> tuple[str, bool | None]:
        full = values.get(FULL)
        return f"≤ {limit:g} {unit}", None if full is None else full <= limit

    return check


def _figure(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def machine() -> str:
    cpu = ""
    try:
        cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        cpu = platform.processor()
    mem = ""
    try:
        kb = int(re.search(r"^MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))  # type: ignore[union-attr]
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores{mem}, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def table(rows: list[Row]) -> str:
    head = [
        "scenario",
        "unit",
        *TARGETS,
        "full ÷ direct",
        "full ÷ kubectl proxy",
        "identity ÷ direct",
        "identity ÷ kubectl proxy",
        "target (full pipeline)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        target = ""
        if row.check is not None:
            text, met = row.check(row.values)
            target = text + (" — **met**" if met else " — **not met**" if met is False else "")
        cells = [
            row.scenario,
            row.unit,
            *(_figure(row.values.get(t)) for t in TARGETS),
            _ratio(ratio(row.values, FULL, DIRECT)),
            _ratio(ratio(row.values, FULL, PROXY)),
            _ratio(ratio(row.values, IDENTITY, DIRECT)),
            _ratio(ratio(row.values, IDENTITY, PROXY)),
            target or row.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row.scenario}: {row.note}" for row in rows if row.note and row.check is not None]
    return "\n".join(lines + (["", *notes] if notes else []))


def render(rows: list[Row], setup: list[str], extra: str = "") -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"## {stamp}", "", f"- machine: {machine()}", *(f"- {line}" for line in setup), "", table(rows)]
    if extra:
        parts += ["", extra]
    return "\n".join(parts) + "\n"


def append(path: Path, text: str) -> None:
    if not path.exists():
        path.write_text(
            "# kubegate benchmark results\n\nAppended by `python -m bench.run`; newest last. "
            "See bench/README.md for what each figure means.\n\n"
        )
    with path.open("a") as f:
        f.write(text + "\n")
