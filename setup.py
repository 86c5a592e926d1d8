"""The web UI's front-end files (kubegate/web/ui/vendor.json, from node_modules after `npm ci`) go into
the wheel as kubegate/web/vendor, and into the sdist as node_modules, so an installed kubegate serves
the whole UI without npm. Editable installs serve node_modules beside the source instead."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
NODE_MODULES = ROOT / "node_modules"


def vendor_files() -> list[str]:
    """The files the UI serves, and each npm package's LICENSE, relative to node_modules."""
    served = set(json.loads((ROOT / "kubegate" / "web" / "ui" / "vendor.json").read_text()).values())
    return sorted(served | {rel.split("/")[0] + "/LICENSE" for rel in served})


def copy_vendor(target: Path) -> None:
    missing = [rel for rel in vendor_files() if not (NODE_MODULES / rel).is_file()]
    if missing:
        raise SystemExit(f"kubegate: {', '.join(missing)} missing from {NODE_MODULES}: run `npm ci` "
                         "(scripts/install does) before building the package")
    for rel in vendor_files():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(NODE_MODULES / rel, target / rel)


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            copy_vendor(Path(self.build_lib) / "kubegate" / "web" / "vendor")


class SDist(sdist):
    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        copy_vendor(Path(base_dir) / "node_modules")


setup(cmdclass={"build_py": BuildPy, "sdist": SDist})
