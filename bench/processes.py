"""Child processes of a benchmark run: started, waited for, drained, measured and always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import re
import signal
import socket
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1
REPO = Path(__file__).resolve().parents[1]


def die_with_parent() -> None:
    """preexec_fn for every child: the kernel sends it SIGTERM when the harness dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (a gateway with workers counts them all)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        with contextlib.suppress(OSError):
            match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{current}/status").read_text(), re.M)
            total += int(match.group(1)) * 1024 if match else 0
    return total


@dataclass(eq=False)
class Process:
    """A child process whose output is kept (the last lines, for error messages) and drained."""

    name: str
    proc: asyncio.subprocess.Process
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    _drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, name: str, argv: list[str], ready: str, within: float = 60, env: dict[str, str] | None = None
    ) -> tuple[Process, re.Match[str]]:
        """Start and wait for a line matching `ready` (a regex) on stdout or stderr."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=REPO,
            preexec_fn=die_with_parent,
        )
        self = cls(name, proc)
        pattern = re.compile(ready)
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(within):
                while True:
                    raw = await proc.stdout.readline()
                    if not raw:
                        raise RuntimeError(f"{name} exited before it was ready:\n" + "\n".join(self.lines))
                    line = raw.decode(errors="replace").rstrip()
                    self.lines.append(line)
                    if match := pattern.search(line):
                        break
        except BaseException:
            await self.stop()
            raise
        self._drain = asyncio.create_task(self._keep_draining())
        return self, match

    async def _keep_draining(self) -> None:
        assert self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.lines.append(raw.decode(errors="replace").rstrip())

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
