"""Static files: kubegate's own CSS and JS, and the front-end parts from the npm registry (package.json at
the repository root; `npm ci` in scripts/install). A wheel carries them in kubegate/web/vendor (setup.py
copies them there); a source checkout serves node_modules beside the source."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aiohttp import web

import kubegate

log = logging.getLogger(__name__)
OWN = Path(__file__).resolve().parent.parent / "static"
PACKAGED_VENDOR_DIR = Path(__file__).resolve().parent.parent / "vendor"
SOURCE_VENDOR_DIR = Path(kubegate.__file__).resolve().parent.parent / "node_modules"
# Served name -> path in node_modules; setup.py reads the same file to put them into the wheel.
VENDOR: dict[str, str] = json.loads((Path(__file__).parent / "vendor.json").read_text())
TYPES = {".js": "text/javascript", ".css": "text/css"}


class Assets:
    def __init__(self, vendor_dir: Path | None) -> None:
        self.vendor_dir = vendor_dir or (PACKAGED_VENDOR_DIR if PACKAGED_VENDOR_DIR.is_dir() else SOURCE_VENDOR_DIR)
        self.missing = sorted(name for name, rel in VENDOR.items() if not (self.vendor_dir / rel).is_file())
        if self.missing:
            log.warning("%s", self.missing_message())

    def missing_message(self) -> str:
        return (
            f"the web UI's front-end parts are not installed in {self.vendor_dir} (missing "
            f"{', '.join(self.missing)}): run `npm ci` in {self.vendor_dir.parent} (scripts/install does), "
            "or set ui.vendor_dir to a node_modules that has htmx.org and asciinema-player"
        )

    def _file(self, path: Path) -> web.StreamResponse:
        return web.FileResponse(
            path,
            headers={
                "Content-Type": TYPES.get(path.suffix, "application/octet-stream"),
                "Cache-Control": "public, max-age=3600",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def own(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = OWN / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound(text=f"no static file {name}")
        return self._file(path)

    async def vendor(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        rel = VENDOR.get(name)
        if rel is None:
            raise web.HTTPNotFound(text=f"no front-end part {name}; kubegate serves {', '.join(sorted(VENDOR))}")
        path = self.vendor_dir / rel
        if not path.is_file():
            return web.Response(status=503, text=self.missing_message())
        return self._file(path)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/static/vendor/{name}", self.vendor)
        app.router.add_get("/static/{name}", self.own)
