"""How other programs (kubectl's exec plugin) call this very kubegate."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import kubegate
from kubegate.cli.execcredential import EXEC_API_VERSIONS


def kubegate_command() -> list[str]:
    """The installed `kubegate` script, or this interpreter running the module."""
    script = shutil.which("kubegate")
    return [script] if script else [sys.executable, "-m", "kubegate"]


def token_plugin(args: list[str]) -> dict[str, Any]:
    """A kubeconfig user's `exec` block running `kubegate token ARGS` as cheaply as Python can start.

    kubectl starts the plugin on every call, so its start-up is paid 50 times in a 50-call CI job. The
    `kubegate` script costs ~50 ms a call, most of it `site` (the installed packages' .pth files and
    finders) and imports. The plugin is standard library only, so this interpreter runs it with `-S` (no
    `site`) and `-P` (neither the working directory nor a script's on sys.path), finding kubegate through
    PYTHONPATH, set for the plugin's process alone; `-c` rather than `-m`, which would load runpy.
    """
    package_root = Path(kubegate.__file__).resolve().parent.parent
    return {
        "apiVersion": EXEC_API_VERSIONS[0],
        "command": sys.executable,
        "args": ["-S", "-P", "-c", "from kubegate.cli.plugin import run; run()", *args],
        "env": [{"name": "PYTHONPATH", "value": str(package_root)}],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }
