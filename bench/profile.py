"""py-spy on the kubegate targets while a scenario runs, reduced to the top items by self and total time.

`python -m bench.run --profile DIR` records one collapsed-stack file per scenario and target in DIR
(open them in speedscope, or read the summary the harness prints); py-spy samples without pausing
the gateway (--nonblocking), and idle time (the event loop waiting) is not sampled.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

from bench.processes import die_with_parent

_LINE = re.compile(r":\d+\)$")
# What the cost model in bench/README.md is made of: each stage's hooks, the store's writer thread, the upstream call
_PARTS = re.compile(
    r"^(\w+Stage\.on_\w+|Store\.write_sync\.<locals>\.transaction|UpstreamClient\.open"
    r"|Pipeline\._prepare) "
)


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, output: Path) -> None:
        self.pid, self.output = pid, output
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            py_spy() or "py-spy",
            "record",
            "--pid",
            str(self.pid),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(self.output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGINT)
            await self._proc.wait()


def _function(frame: str) -> str:
    """`name (path:line)` -> `name (short path)`: samples add up per function, not per line."""
    frame = _LINE.sub(")", frame.strip())
    return re.sub(r"\(.*?/(site-packages|lib/python3\.\d+|kubegate|bench)/", r"(\1/", frame)


def top(raw: Path, n: int = 12) -> str:
    """Top functions by self time (the leaf of each sample) and kubegate's by total time."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";")[2:]]  # drop the process and thread frames
        if not frames:
            continue
        weight = int(count)
        samples += weight
        own[frames[-1]] += weight
        for frame in set(frames):
            if "(kubegate/" in frame:
                total[frame] += weight
            if (part := _PARTS.match(frame)) is not None:
                parts[part.group(1)] += weight
    if not samples:
        return f"{raw.name}: no samples"
    out = [f"{raw.stem}: {samples} samples", "  self time:"]
    out += [f"    {c / samples:6.1%}  {f}" for f, c in own.most_common(n)]
    out.append("  total time, kubegate functions:")
    out += [f"    {c / samples:6.1%}  {f}" for f, c in total.most_common(n)]
    out.append("  by part (total time: stage hooks, store writer thread, upstream call, sending headers):")
    out += [f"    {c / samples:6.1%}  {f}" for f, c in parts.most_common()]
    return "\n".join(out)
