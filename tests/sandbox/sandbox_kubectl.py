"""Running the real kubectl against the sandbox: one-shot commands and streams read line by line."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

KUBECTL = Path(sys.executable).parent / "kubectl"
STREAM_WAIT = 30.0  # safety net for a stream that never delivers; never a timing assertion


@dataclass
class Kubectl:
    kubeconfig: Path
    home: Path

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args]

    def _env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": os.environ.get("PATH", "")}

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._argv(args), capture_output=True, text=True, input=stdin, env=self._env(), timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def stream(self, *args: str) -> Stream:
        proc = subprocess.Popen(
            self._argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self._env()
        )
        return Stream(proc)


class Stream:
    """A running kubectl whose output lines are read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next_line(self) -> str:
        try:
            line = self._lines.get(timeout=STREAM_WAIT)
        except queue.Empty:
            raise AssertionError("kubectl printed nothing more") from None
        if line is None:
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"kubectl ended early: {stderr}")
        return line

    def line_containing(self, text: str) -> str:
        while text not in (line := self.next_line()):
            pass
        return line

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
