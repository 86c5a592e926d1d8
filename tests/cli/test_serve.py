"""Process settings `kubegate serve` makes before it starts the gateway."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Frees a 24 MB block, then makes 8 MB blocks and a small one that outlives them (as a long-lived object
# allocated during a LIST would); prints how many MB of the freed blocks stay in RSS.
_CHURN = """
import sys
from kubegate.cli.serve import return_large_buffers
if sys.argv[1] == "fixed":
    return_large_buffers()
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
del_first = bytearray(24 << 20)
del del_first
base = rss()
blocks = [bytearray(8 << 20) for _ in range(6)]
for b in blocks:
    b[::4096] = b"x" * len(b[::4096])
pinned = bytearray(200 << 10)
del blocks, b
print((rss() - base) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc behaviour")
def test_large_buffers_go_back_to_the_system_when_freed() -> None:
    """By default glibc keeps freed blocks below its raised mmap threshold in the heap; serve fixes the
    threshold, so what a large LIST allocated is returned once it is freed."""
    kept = {mode: int(subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True,
                                     check=True).stdout) for mode in ("default", "fixed")}
    assert kept["fixed"] < 4 <= kept["default"], kept
