"""How other programs (kubectl's exec plugin) call this very kubegate."""

from __future__ import annotations

import shutil
import sys


def kubegate_command() -> list[str]:
    """The installed `kubegate` script, or this interpreter running the module."""
    script = shutil.which("kubegate")
    return [script] if script else [sys.executable, "-m", "kubegate"]
